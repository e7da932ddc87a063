//! Disks that fail on purpose, mounted over a server's data directory (root only):
//! [`Tmpfs`], small, to fill; [`FrozenDisk`], an ext4 image on a loop device that `fsfreeze`
//! can freeze, so writes hang as on a stuck disk. Unmounted when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// A mounted tmpfs.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Whether this process may mount one (it runs as root).
    pub fn available() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    }

    /// Mounts a tmpfs of `size_kib` over `dir` (created if missing).
    pub fn mount(dir: &Path, size_kib: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_kib}k"),
            "tmpfs",
            &dir.display().to_string(),
        ])?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Grows or shrinks it in place; the files stay.
    pub fn resize(&self, size_kib: u64) -> anyhow::Result<()> {
        self.remount(&format!("remount,size={size_kib}k"))
    }

    /// Bytes free.
    pub fn free_bytes(&self) -> u64 {
        Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    fn remount(&self, options: &str) -> anyhow::Result<()> {
        mount(&["-o", options, &self.dir.display().to_string()])
    }
}

fn mount(args: &[&str]) -> anyhow::Result<()> {
    run("mount", args)
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still holds a file there must not keep the test from ending.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// An ext4 image on a loop device: its writes can be frozen (they then hang, unanswered).
#[derive(Debug)]
pub struct FrozenDisk {
    dir: PathBuf,
    image: PathBuf,
}

impl FrozenDisk {
    /// Makes an ext4 image of `size_mib` next to `dir` and mounts it over `dir`.
    pub fn mount(dir: &Path, size_mib: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let image = dir.with_extension("ext4");
        std::fs::File::create(&image)?.set_len(size_mib * 1024 * 1024)?;
        run("mkfs.ext4", &["-q", &image.display().to_string()])?;
        mount(&[
            "-o",
            "loop",
            &image.display().to_string(),
            &dir.display().to_string(),
        ])?;
        Ok(Self {
            dir: dir.to_path_buf(),
            image,
        })
    }

    /// Freezes (`true`) or thaws its writes.
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        run(
            "fsfreeze",
            &[
                if frozen { "-f" } else { "-u" },
                &self.dir.display().to_string(),
            ],
        )
    }
}

impl Drop for FrozenDisk {
    fn drop(&mut self) {
        let _ = self.freeze(false);
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
