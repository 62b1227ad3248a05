//! `.npy` files written by hand from NumPy's format specification (not by the `npyz` crate
//! vidcls reads them with), for the tests and fuzz targets of the feature reader; included
//! with `#[path]`.

/// A `.npy` file of format `version` (1: 16-bit header length, 2: 32-bit) whose header says
/// `descr`, `fortran` order and `shape` (a Python tuple, e.g. `"(2, 768)"`) as NumPy writes
/// them; `data` is stored as given, whether or not it matches.
pub fn npy(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    while (prefix + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}
