//! IDX files (MNIST, Fashion-MNIST): big-endian magic, dimensions, then unsigned bytes.
//!
//! Format (LeCun's MNIST page): bytes 0-1 zero, byte 2 the element type (0x08 = u8), byte 3 the
//! number of dimensions, then one big-endian u32 per dimension, then the data row-major. Files may be
//! gzipped; the gzip magic `1f 8b` decides, not the name.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// A decoded IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, e.g. `[60000, 28, 28]` or `[60000]`.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Read an IDX file, gzipped or not.
pub fn read(path: &Path) -> Result<Idx, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::io(path, source))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|err| DataError::corrupt(path, out.len(), format!("gzip stream: {err}")))?;
        out
    } else {
        raw
    };
    parse(&bytes).map_err(|(offset, message)| DataError::corrupt(path, offset, message))
}

/// Parse IDX bytes; on error, the byte offset (of the decompressed stream) and what is wrong.
pub fn parse(bytes: &[u8]) -> Result<Idx, (usize, String)> {
    if bytes.len() < 4 {
        return Err((
            bytes.len(),
            "truncated header: an IDX file starts with 4 magic bytes".into(),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err((
            0,
            format!(
                "bad magic {:02x} {:02x}: not an IDX file",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err((
            2,
            format!(
                "element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err((3, "zero dimensions".into()));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err((
            bytes.len(),
            format!("truncated header: {rank} dimensions need {header} bytes"),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or((4, format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() < len {
        return Err((
            bytes.len(),
            format!(
                "truncated: dimensions {dims:?} need {len} data bytes after the header, found {}",
                body.len()
            ),
        ));
    }
    if body.len() > len {
        return Err((
            header + len,
            format!("{} unexpected bytes after the data", body.len() - len),
        ));
    }
    Ok(Idx {
        dims,
        data: body.to_vec(),
    })
}

/// Encode bytes as IDX (used to write subsets and test files).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_of_a_tiny_image_file() {
        let bytes = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let idx = parse(&bytes).unwrap();
        assert_eq!(idx.dims, vec![2, 2, 3]);
        assert_eq!(idx.data[11], 12);
    }

    #[test]
    fn truncation_names_the_offset() {
        let bytes = encode(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        let (offset, message) = parse(&bytes[..bytes.len() - 2]).unwrap_err();
        assert_eq!(offset, bytes.len() - 2);
        assert!(message.contains("truncated"), "{message}");
        assert_eq!(parse(&bytes[..6]).unwrap_err().0, 6);
    }

    #[test]
    fn wrong_magic_and_type_are_reported() {
        assert_eq!(parse(&[0, 1, 8, 1]).unwrap_err().0, 0);
        assert_eq!(parse(&[0, 0, 0x0d, 1]).unwrap_err().0, 2);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(cut in 0usize..20) {
            let bytes = encode(&[2, 3], &[9; 6]);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(parse(&bytes[..cut]).is_err());
        }
    }
}
