//! A check of PyTorch checkpoint files before burn-store reads them.
//!
//! burn-store's pickle reader allocates a string or byte buffer of whatever length an opcode
//! claims, so a 1 KB file that claims a 4 GiB string aborts the process. This module walks
//! the pickle opcodes (protocols 0 to 5) without building anything and refuses a length that
//! runs past the end of the data, and a `data.pkl` zip entry that inflates beyond
//! [`MAX_PICKLE_BYTES`]. burn-store also reserves a zip entry's claimed size, and fills tensors
//! whose storage entry is missing or short with zeros; so zip entries must be able to hold
//! what they claim, and every storage the pickle refers to must have its bytes.

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
            check_pickles(&pickle, 1).map_err(|e| format!("{name}: {e}"))?;
            let prefix = &name[..name.len() - "data.pkl".len()];
            check_storages(&mut archive, prefix, &pickle).map_err(|e| format!("{name}: {e}"))
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

/// Refuses a zip checkpoint whose tensor storages (the `('storage', type, key, location,
/// numel)` persistent ids of its pickle) have no `<prefix>data/<key>` entry or a shorter one:
/// burn-store would fill the missing values with zeros.
fn check_storages<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    prefix: &str,
    pickle: &[u8],
) -> Result<(), String> {
    let (claims, extents) = storage_claims(pickle);
    for (key, numel, extent) in extents {
        match extent {
            Some(extent) if extent <= numel => {}
            Some(extent) => {
                return Err(format!(
                    "a tensor reaches element {extent} of storage {key}, which has {numel}"
                ));
            }
            None => return Err(format!("a tensor on storage {key} has an invalid shape")),
        }
    }
    for (key, bytes) in claims {
        let entry = format!("{prefix}data/{key}");
        let size = match archive.by_name(&entry) {
            Ok(file) => file.size(),
            Err(_) => return Err(format!("storage {key} has no entry {entry}")),
        };
        if size < bytes {
            return Err(format!(
                "storage {key} needs {bytes} bytes but {entry} holds {size}"
            ));
        }
    }
    Ok(())
}

/// A value on the stack of [`storage_claims`]' pickle machine: only what persistent ids are
/// made of is kept.
#[derive(Clone)]
enum Item {
    Str(String),
    Int(u64),
    Global(String),
    Tuple(Vec<Item>),
    /// A storage: its key and its number of elements.
    Storage(String, u64),
    Mark,
    Other,
}

/// A storage's key and the bytes its elements take.
type StorageBytes = (String, u64);
/// A tensor's storage key, that storage's elements, and the elements the tensor reaches.
type TensorExtent = (String, u64, Option<u64>);

/// Bytes of one element of a typed storage class (`torch.FloatStorage`, ...).
fn storage_element_size(class: &str) -> Option<u64> {
    Some(match class.rsplit('.').next()? {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" => 1,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

/// The storages a (length-checked) pickle refers to, as (key, bytes), and the tensors built on
/// them, as (storage key, storage elements, elements the view reaches): a small machine that
/// follows strings, integers, globals, tuples, storages and the memo, and treats everything
/// else as an opaque value.
fn storage_claims(bytes: &[u8]) -> (Vec<StorageBytes>, Vec<TensorExtent>) {
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Item> = std::collections::HashMap::new();
    let mut claims = Vec::new();
    let mut extents = Vec::new();
    let mut at = 0;
    let int = |at: &mut usize, width: usize| -> u64 {
        let mut value = [0u8; 8];
        let end = (*at + width).min(bytes.len());
        value[..end - *at].copy_from_slice(&bytes[*at..end]);
        *at = end;
        u64::from_le_bytes(value)
    };
    let text = |at: &mut usize, len: u64| -> String {
        let end = (*at as u64 + len).min(bytes.len() as u64) as usize;
        let value = String::from_utf8_lossy(&bytes[*at..end]).into_owned();
        *at = end;
        value
    };
    let line = |at: &mut usize| -> String {
        let end = bytes[*at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| *at + p);
        let value = String::from_utf8_lossy(&bytes[*at..end]).into_owned();
        *at = (end + 1).min(bytes.len());
        value
    };
    let pop_to_mark = |stack: &mut Vec<Item>| -> Vec<Item> {
        let mark = stack.iter().rposition(|item| matches!(item, Item::Mark));
        let items = stack.split_off(mark.map_or(0, |m| m + 1));
        if mark.is_some() {
            stack.pop();
        }
        items
    };
    while let Some(&opcode) = bytes.get(at) {
        at += 1;
        match opcode {
            b'.' => break,
            b'(' => stack.push(Item::Mark),
            b't' => {
                let items = pop_to_mark(&mut stack);
                stack.push(Item::Tuple(items));
            }
            b')' => stack.push(Item::Tuple(Vec::new())),
            0x85..=0x87 => {
                let n = usize::from(opcode - 0x84).min(stack.len());
                let items = stack.split_off(stack.len() - n);
                stack.push(Item::Tuple(items));
            }
            b'l' | b'd' | 0x91 | b'i' | b'o' => {
                if opcode == b'i' {
                    line(&mut at);
                    line(&mut at);
                }
                pop_to_mark(&mut stack);
                stack.push(Item::Other);
            }
            b'u' | b'e' | 0x90 | b'1' => {
                pop_to_mark(&mut stack);
            }
            b'X' => {
                let len = int(&mut at, 4);
                stack.push(Item::Str(text(&mut at, len)));
            }
            0x8c => {
                let len = int(&mut at, 1);
                stack.push(Item::Str(text(&mut at, len)));
            }
            0x8d => {
                let len = int(&mut at, 8);
                stack.push(Item::Str(text(&mut at, len)));
            }
            b'U' | b'C' | b'T' | b'B' | 0x8e | 0x96 => {
                let width = match opcode {
                    b'U' | b'C' => 1,
                    b'T' | b'B' => 4,
                    _ => 8,
                };
                let len = int(&mut at, width);
                text(&mut at, len);
                stack.push(Item::Other);
            }
            b'K' => stack.push(Item::Int(int(&mut at, 1))),
            b'M' => stack.push(Item::Int(int(&mut at, 2))),
            b'J' => stack.push(Item::Int(int(&mut at, 4) as u32 as i32 as u64)),
            0x8a => {
                let len = int(&mut at, 1) as usize;
                let value = int(&mut at, len.min(8));
                at = (at + len.saturating_sub(8)).min(bytes.len());
                stack.push(Item::Int(value));
            }
            0x8b => {
                let len = int(&mut at, 4);
                text(&mut at, len);
                stack.push(Item::Other);
            }
            b'I' | b'L' => {
                let value = line(&mut at);
                let value = value.trim_end_matches('L').parse::<u64>();
                stack.push(value.map_or(Item::Other, Item::Int));
            }
            b'F' | b'S' | b'V' | b'P' => {
                line(&mut at);
                stack.push(Item::Other);
            }
            b'c' => {
                let module = line(&mut at);
                let name = line(&mut at);
                stack.push(Item::Global(format!("{module}.{name}")));
            }
            0x93 => {
                let name = stack.pop();
                let module = stack.pop();
                stack.push(match (module, name) {
                    (Some(Item::Str(module)), Some(Item::Str(name))) => {
                        Item::Global(format!("{module}.{name}"))
                    }
                    _ => Item::Other,
                });
            }
            b'q' | b'r' | b'p' | 0x94 => {
                let index = match opcode {
                    b'q' => int(&mut at, 1),
                    b'r' => int(&mut at, 4),
                    b'p' => line(&mut at).parse().unwrap_or(u64::MAX),
                    _ => memo.len() as u64,
                };
                if let Some(top) = stack.last() {
                    memo.insert(index, top.clone());
                }
            }
            b'h' | b'j' | b'g' => {
                let index = match opcode {
                    b'h' => int(&mut at, 1),
                    b'j' => int(&mut at, 4),
                    _ => line(&mut at).parse().unwrap_or(u64::MAX),
                };
                stack.push(memo.get(&index).cloned().unwrap_or(Item::Other));
            }
            b'Q' => {
                if let Some(Item::Tuple(id)) = stack.pop()
                    && let [
                        Item::Str(kind),
                        Item::Global(class),
                        key,
                        _,
                        Item::Int(numel),
                    ] = id.as_slice()
                    && kind == "storage"
                    && let Some(size) = storage_element_size(class)
                {
                    let key = match key {
                        Item::Str(key) => key.clone(),
                        Item::Int(key) => key.to_string(),
                        _ => String::new(),
                    };
                    claims.push((key.clone(), numel.saturating_mul(size)));
                    stack.push(Item::Storage(key, *numel));
                } else {
                    stack.push(Item::Other);
                }
            }
            b'R' => {
                let args = stack.pop();
                let callable = stack.pop();
                if let (Some(Item::Global(callable)), Some(Item::Tuple(args))) = (callable, args)
                    && callable.ends_with("_rebuild_tensor_v2")
                    && let [
                        Item::Storage(key, numel),
                        Item::Int(offset),
                        Item::Tuple(sizes),
                        Item::Tuple(strides),
                        ..,
                    ] = args.as_slice()
                {
                    extents.push((key.clone(), *numel, tensor_extent(*offset, sizes, strides)));
                }
                stack.push(Item::Other);
            }
            0x81 => {
                stack.pop();
                stack.pop();
                stack.push(Item::Other);
            }
            0x92 => {
                stack.truncate(stack.len().saturating_sub(3));
                stack.push(Item::Other);
            }
            b'b' | b'a' | b'0' => {
                stack.pop();
            }
            b's' => {
                stack.pop();
                stack.pop();
            }
            b'2' => {
                let top = stack.last().cloned().unwrap_or(Item::Other);
                stack.push(top);
            }
            b'G' => {
                at = (at + 8).min(bytes.len());
                stack.push(Item::Other);
            }
            0x80 => at = (at + 1).min(bytes.len()),
            0x82 => {
                at = (at + 1).min(bytes.len());
                stack.push(Item::Other);
            }
            0x98 => {}
            0x83 => {
                at = (at + 2).min(bytes.len());
                stack.push(Item::Other);
            }
            0x84 => {
                at = (at + 4).min(bytes.len());
                stack.push(Item::Other);
            }
            0x95 => at = (at + 8).min(bytes.len()),
            // NONE, NEWTRUE, NEWFALSE, EMPTY_LIST, EMPTY_DICT, EMPTY_SET, NEXT_BUFFER.
            _ => stack.push(Item::Other),
        }
    }
    (claims, extents)
}

/// Elements of its storage that a tensor view reaches: `offset + Σ (size - 1) * stride + 1`
/// (0 for an empty tensor); `None` if the sizes or strides are not plain integers or overflow.
fn tensor_extent(offset: u64, sizes: &[Item], strides: &[Item]) -> Option<u64> {
    let mut last = offset;
    for (size, stride) in sizes.iter().zip(strides) {
        let (Item::Int(size), Item::Int(stride)) = (size, stride) else {
            return None;
        };
        if *size == 0 {
            return Some(0);
        }
        last = last.checked_add((size - 1).checked_mul(*stride)?)?;
    }
    if sizes.len() != strides.len() {
        return None;
    }
    last.checked_add(1)
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

    /// The fixture reference checkpoint rewritten by `edit(name, bytes)` (`None` drops the
    /// entry); returns the path of the new file in `dir`.
    fn edited_fixture(
        dir: &Path,
        edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    ) -> std::path::PathBuf {
        use std::io::Write;
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/model/classifier.pth");
        let mut archive = zip::ZipArchive::new(File::open(fixture).unwrap()).unwrap();
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).unwrap();
            let name = entry.name().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            if let Some(bytes) = edit(&name, bytes) {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                writer.start_file(name, options).unwrap();
                writer.write_all(&bytes).unwrap();
            }
        }
        let path = dir.join("edited.pth");
        std::fs::write(&path, writer.finish().unwrap().into_inner()).unwrap();
        path
    }

    #[test]
    fn storages_missing_or_shorter_than_the_pickle_says_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let same = edited_fixture(dir.path(), |_, bytes| Some(bytes));
        check_pytorch_file(&same).unwrap();
        let mut pickle = Vec::new();
        zip::ZipArchive::new(File::open(&same).unwrap())
            .unwrap()
            .by_name("classifier/data.pkl")
            .unwrap()
            .read_to_end(&mut pickle)
            .unwrap();
        let (claims, extents) = storage_claims(&pickle);
        assert_eq!(extents.len(), claims.len(), "one tensor per storage");
        assert!(
            extents
                .iter()
                .all(|(_, numel, extent)| Some(*numel) == *extent)
        );
        // Storage 0 of 384 bytes (the first float tensor of the fixture, 96 values).
        assert!(claims.contains(&("0".to_string(), 384)), "{claims:?}");
        assert!(claims.len() > 10, "{claims:?}");
        let missing = edited_fixture(dir.path(), |name, bytes| {
            (name != "classifier/data/0").then_some(bytes)
        });
        let error = check_pytorch_file(&missing).unwrap_err();
        assert!(
            error.contains("storage 0 has no entry classifier/data/0"),
            "{error}"
        );
        let short = edited_fixture(dir.path(), |name, mut bytes| {
            if name == "classifier/data/0" {
                bytes.truncate(100);
            }
            Some(bytes)
        });
        let error = check_pytorch_file(&short).unwrap_err();
        assert!(
            error.contains("storage 0 needs 384 bytes but classifier/data/0 holds 100"),
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
