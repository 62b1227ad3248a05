//! Zip archives and checksums built by tests (shared by the CLI tests and the fuzzing
//! harness through `#[path]`).

use std::io::{Cursor, Write};

/// CRC-32 (ISO-HDLC: the checksum of zip entries and PNG chunks) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A zip of `entries` (name, bytes; a name ending in `/` is a directory), deflated or stored.
pub fn zip(entries: &[(&str, &[u8])], deflated: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflated {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, options).unwrap();
        } else {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}
