//! A check of PyTorch checkpoint files before burn-store reads them.
//!
//! burn-store's pickle reader allocates a string or byte buffer of whatever length an opcode
//! claims, so a 1 KB file that claims a 4 GiB string aborts the process. This module walks
//! the pickle opcodes (protocols 0 to 5) without building anything and refuses a length that
//! runs past the end of the data, and a `data.pkl` zip entry that inflates beyond
//! [`MAX_PICKLE_BYTES`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The largest pickle accepted (the `data.pkl` of a zip checkpoint, inflated). A state dict's
/// pickle holds names, shapes and storage keys: kilobytes to a few megabytes.
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Pickles at the start of a legacy (pre-1.6, not zip) PyTorch file: magic number, protocol
/// version, system information, the object, the storage keys; raw storage data follows.
const LEGACY_PICKLES: usize = 5;

/// Checks the pickle of the PyTorch file at `path`: `archive/data.pkl` (or any `*data.pkl`)
/// of a zip checkpoint, or the leading pickles of a legacy file. Errors say what is wrong.
pub fn check_pytorch_file(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    match zip::ZipArchive::new(BufReader::new(file)) {
        Ok(mut archive) => {
            check_entry_sizes(&mut archive, file_len)?;
            let name = (0..archive.len())
                .filter_map(|index| archive.name_for_index(index))
                .find(|name| *name == "data.pkl" || name.ends_with("/data.pkl"))
                .map(str::to_string);
            // burn-store reports a zip without data.pkl itself.
            let Some(name) = name else { return Ok(()) };
            let entry = archive.by_name(&name).map_err(|e| e.to_string())?;
            let mut pickle = Vec::new();
            entry
                .take(MAX_PICKLE_BYTES + 1)
                .read_to_end(&mut pickle)
                .map_err(|e| format!("{name}: {e}"))?;
            if pickle.len() as u64 > MAX_PICKLE_BYTES {
                return Err(format!(
                    "{name} inflates beyond {} MiB, the limit for a checkpoint's pickle",
                    MAX_PICKLE_BYTES >> 20
                ));
            }
            check_pickles(&pickle, 1).map_err(|e| format!("{name}: {e}"))
        }
        Err(_) => {
            let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
            check_pickles(&bytes, LEGACY_PICKLES)
        }
    }
}

/// Deflate's largest inflation ratio: one compressed byte never inflates to more.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Refuses zip entries whose claimed sizes the file cannot hold: burn-store reserves an
/// entry's claimed uncompressed size before reading it.
fn check_entry_sizes<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    file_len: u64,
) -> Result<(), String> {
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| e.to_string())?;
        let (claimed, compressed) = (entry.size(), entry.compressed_size());
        let possible = match entry.compression() {
            zip::CompressionMethod::Stored => compressed,
            _ => compressed.saturating_mul(MAX_DEFLATE_RATIO),
        };
        if compressed > file_len || claimed > possible {
            return Err(format!(
                "zip entry {} claims {claimed} bytes from {compressed} stored bytes, more than \
                 the {file_len}-byte file can hold",
                entry.name()
            ));
        }
    }
    Ok(())
}

/// Walks up to `count` consecutive pickles at the start of `bytes` (fewer if the bytes end
/// between two pickles) and checks every argument against the bytes that remain.
pub fn check_pickles(bytes: &[u8], count: usize) -> Result<(), String> {
    let mut at = 0;
    for _ in 0..count {
        if at == bytes.len() {
            break;
        }
        at = check_pickle(bytes, at)?;
    }
    Ok(())
}

/// Walks one pickle from `start` to its STOP opcode; returns the offset after it.
fn check_pickle(bytes: &[u8], start: usize) -> Result<usize, String> {
    let mut at = start;
    let take = |at: &mut usize, len: u64, what: &str| -> Result<(), String> {
        let left = (bytes.len() - *at) as u64;
        if len > left {
            return Err(format!(
                "pickle opcode at byte {} claims {len} bytes of {what}; only {left} remain",
                *at - 1
            ));
        }
        *at += len as usize;
        Ok(())
    };
    let int = |at: &mut usize, width: usize| -> Result<u64, String> {
        let field = bytes
            .get(*at..*at + width)
            .ok_or_else(|| format!("pickle ends inside an opcode at byte {at}"))?;
        *at += width;
        let mut value = [0u8; 8];
        value[..width].copy_from_slice(field);
        Ok(u64::from_le_bytes(value))
    };
    let line = |at: &mut usize| -> Result<(), String> {
        let end = bytes[*at..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("pickle ends inside a text argument at byte {at}"))?;
        *at += end + 1;
        Ok(())
    };
    loop {
        let Some(&opcode) = bytes.get(at) else {
            return Err(format!("pickle ends at byte {at} without its STOP opcode"));
        };
        at += 1;
        match opcode {
            b'.' => return Ok(at),
            // No argument.
            b'('
            | b'0'
            | b'1'
            | b'2'
            | b'N'
            | b'R'
            | b'a'
            | b'b'
            | b'd'
            | b'}'
            | b'e'
            | b'l'
            | b']'
            | b'o'
            | b's'
            | b't'
            | b')'
            | b'u'
            | b'Q'
            | 0x81
            | 0x85..=0x89
            | 0x8f..=0x94
            | 0x97
            | 0x98 => {}
            // Fixed-size arguments.
            b'K' | b'h' | b'q' | 0x80 | 0x82 => take(&mut at, 1, "an integer")?,
            b'M' | 0x83 => take(&mut at, 2, "an integer")?,
            b'J' | b'j' | b'r' | 0x84 => take(&mut at, 4, "an integer")?,
            b'G' | 0x95 => take(&mut at, 8, "a number")?,
            // Text arguments up to a newline (INST and GLOBAL take two).
            b'I' | b'L' | b'F' | b'S' | b'V' | b'P' | b'g' | b'p' => line(&mut at)?,
            b'i' | b'c' => {
                line(&mut at)?;
                line(&mut at)?;
            }
            // Length-prefixed arguments.
            b'U' | b'C' | 0x8c | 0x8a => {
                let len = int(&mut at, 1)?;
                take(&mut at, len, "data")?;
            }
            b'X' | b'B' => {
                let len = int(&mut at, 4)?;
                take(&mut at, len, "data")?;
            }
            b'T' | 0x8b => {
                let len = int(&mut at, 4)? as u32 as i32;
                if len < 0 {
                    return Err(format!("pickle opcode at byte {} has length {len}", at - 5));
                }
                take(&mut at, len as u64, "data")?;
            }
            0x8d | 0x8e | 0x96 => {
                let len = int(&mut at, 8)?;
                take(&mut at, len, "data")?;
            }
            other => {
                return Err(format!(
                    "not a pickle: unknown opcode 0x{other:02x} at byte {}",
                    at - 1
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{'a': 'xy'}` as Python's pickle protocol 2 writes it.
    const SMALL: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01X\x02\x00\x00\x00xyq\x02s.";

    #[test]
    fn zip_entries_claiming_more_than_the_file_holds_are_refused() {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        writer.start_file("archive/data.pkl", options).unwrap();
        writer.write_all(SMALL).unwrap();
        writer.start_file("archive/data/0", options).unwrap();
        writer.write_all(&[0; 16]).unwrap();
        let mut bytes = writer.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth");
        std::fs::write(&path, &bytes).unwrap();
        check_pytorch_file(&path).unwrap();
        // The central directory's uncompressed size of archive/data/0: 16 -> 0xFF000000.
        let entry = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        bytes[entry + 24..entry + 28].copy_from_slice(&0xFF00_0000u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let error = check_pytorch_file(&path).unwrap_err();
        assert!(
            error.contains("archive/data/0 claims 4278190080 bytes"),
            "{error}"
        );
    }

    #[test]
    fn valid_pickles_pass_and_lying_lengths_are_refused() {
        assert!(check_pickles(SMALL, 1).is_ok());
        // Two pickles in a row (the legacy layout), then raw data that is not walked.
        let two = [SMALL, SMALL, b"\xff\xff raw storage"].concat();
        assert!(check_pickles(&two, 2).is_ok());
        // The string 'xy' claims 0xFF000000 bytes.
        let mut lying = SMALL.to_vec();
        lying[14..18].copy_from_slice(&0xFF00_0000u32.to_le_bytes());
        let error = check_pickles(&lying, 1).unwrap_err();
        assert!(error.contains("claims 4278190080 bytes"), "{error}");
        // BINUNICODE8 claiming 2^63 bytes.
        let huge = [
            b"\x80\x04\x8d".as_slice(),
            &(1u64 << 63).to_le_bytes(),
            b".",
        ]
        .concat();
        assert!(check_pickles(&huge, 1).is_err());
        assert!(check_pickles(&SMALL[..SMALL.len() - 1], 1).is_err());
        assert!(
            check_pickles(b"\x80\x02\xfe.", 1)
                .unwrap_err()
                .contains("0xfe")
        );
    }
}
