//! influx store (being written).
