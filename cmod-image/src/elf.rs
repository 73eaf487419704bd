//! The little of ELF that image building and checking need: the target machine and the
//! dynamic loader (`PT_INTERP`). Only 64-bit little-endian files are parsed in depth, which
//! covers every `linux/amd64` binary.

/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64 (named in error messages).
pub const EM_AARCH64: u16 = 183;

const PT_INTERP: u32 = 3;

/// What an ELF file says about how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_machine` (see [`EM_X86_64`]).
    pub machine: u16,
    /// 64-bit (`ELFCLASS64`).
    pub is_64bit: bool,
    /// The dynamic loader from `PT_INTERP` (e.g. `/lib64/ld-linux-x86-64.so.2`); `None` for
    /// static executables.
    pub interpreter: Option<String>,
}

impl ElfInfo {
    /// Whether this runs on `linux/amd64`.
    pub fn is_amd64(&self) -> bool {
        self.machine == EM_X86_64 && self.is_64bit
    }

    /// A human name for the machine, for error messages.
    pub fn machine_name(&self) -> String {
        match (self.machine, self.is_64bit) {
            (EM_X86_64, true) => "x86-64 (amd64)".to_owned(),
            (EM_X86_64, false) => "x32".to_owned(),
            (EM_AARCH64, _) => "aarch64 (arm64)".to_owned(),
            (3, _) => "i386".to_owned(),
            (40, _) => "arm".to_owned(),
            (m, _) => format!("ELF machine {m}"),
        }
    }
}

/// Why a file is not a usable ELF executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// The headers point outside the file.
    #[error("truncated or malformed ELF file ({0})")]
    Malformed(&'static str),
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the ELF header and program headers of `bytes`.
pub fn parse(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    let class = *bytes.get(4).ok_or(ElfError::Malformed("header"))?;
    let data = *bytes.get(5).ok_or(ElfError::Malformed("header"))?;
    let raw_machine = bytes.get(18..20).ok_or(ElfError::Malformed("header"))?;
    let machine = if data == 2 {
        u16::from_be_bytes([raw_machine[0], raw_machine[1]])
    } else {
        u16::from_le_bytes([raw_machine[0], raw_machine[1]])
    };
    let is_64bit = class == 2;
    if !is_64bit || data != 1 {
        // Not amd64 anyway: report the machine, skip program headers.
        return Ok(ElfInfo {
            machine,
            is_64bit,
            interpreter: None,
        });
    }
    let phoff = u64_le(bytes, 32).ok_or(ElfError::Malformed("e_phoff"))?;
    let phentsize = u16_le(bytes, 54).ok_or(ElfError::Malformed("e_phentsize"))?;
    let phnum = u16_le(bytes, 56).ok_or(ElfError::Malformed("e_phnum"))?;
    let mut interpreter = None;
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|a| usize::try_from(a).ok())
            .ok_or(ElfError::Malformed("program header offset"))?;
        let p_type = u32_le(bytes, at).ok_or(ElfError::Malformed("program header"))?;
        if p_type != PT_INTERP {
            continue;
        }
        let offset = u64_le(bytes, at + 8).ok_or(ElfError::Malformed("PT_INTERP"))?;
        let size = u64_le(bytes, at + 32).ok_or(ElfError::Malformed("PT_INTERP"))?;
        let start = usize::try_from(offset).map_err(|_| ElfError::Malformed("PT_INTERP"))?;
        let len = usize::try_from(size).map_err(|_| ElfError::Malformed("PT_INTERP"))?;
        let raw = start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end))
            .ok_or(ElfError::Malformed("PT_INTERP outside the file"))?;
        let path = raw.split(|&b| b == 0).next().unwrap_or_default();
        interpreter = Some(String::from_utf8_lossy(path).into_owned());
    }
    Ok(ElfInfo {
        machine,
        is_64bit,
        interpreter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn parses_the_running_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let info = parse(&std::fs::read(exe).unwrap()).unwrap();
        assert!(info.is_amd64(), "{info:?}");
    }

    #[test]
    fn rejects_non_elf_and_truncated() {
        assert_eq!(parse(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert!(matches!(
            parse(b"\x7fELF\x02\x01\x01"),
            Err(ElfError::Malformed(_))
        ));
    }

    #[test]
    fn arm64_header_is_reported() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        let info = parse(&h).unwrap();
        assert!(!info.is_amd64());
        assert_eq!(info.machine_name(), "aarch64 (arm64)");
    }
}
