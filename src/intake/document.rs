//! What a document's bytes are, told by their first bytes ("magic numbers"), never by the
//! file name or the type the client claims.
//!
//! Four types are accepted, so four signatures are matched here rather than through a
//! general file-type crate: the list is the policy (what an identity scan or a receipt may
//! be), and each signature is a published constant.

/// A document type the service accepts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize,
)]
pub enum DocumentType {
    /// `application/pdf`: starts with `%PDF-`.
    Pdf,
    /// `image/png`: the 8-byte PNG signature.
    Png,
    /// `image/jpeg`: `FF D8 FF`.
    Jpeg,
    /// `image/heic`: an ISO base media file whose `ftyp` brand is a HEIF brand.
    Heic,
}

impl DocumentType {
    /// The type of `bytes`, if it is one of the accepted ones.
    pub fn sniff(bytes: &[u8]) -> Option<DocumentType> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        const HEIF_BRANDS: [&[u8; 4]; 8] = [
            b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
        ];
        if bytes.starts_with(b"%PDF-") {
            Some(DocumentType::Pdf)
        } else if bytes.starts_with(PNG) {
            Some(DocumentType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(DocumentType::Jpeg)
        } else if bytes.len() >= 12
            && &bytes[4..8] == b"ftyp"
            && HEIF_BRANDS.iter().any(|brand| &bytes[8..12] == *brand)
        {
            Some(DocumentType::Heic)
        } else {
            None
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            DocumentType::Pdf => "application/pdf",
            DocumentType::Png => "image/png",
            DocumentType::Jpeg => "image/jpeg",
            DocumentType::Heic => "image/heic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_decide_the_type() {
        assert_eq!(
            DocumentType::sniff(b"%PDF-1.7\n..."),
            Some(DocumentType::Pdf)
        );
        assert_eq!(
            DocumentType::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(DocumentType::Png)
        );
        assert_eq!(
            DocumentType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(DocumentType::Jpeg)
        );
        assert_eq!(
            DocumentType::sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Some(DocumentType::Heic)
        );
        assert_eq!(
            DocumentType::sniff(b"\0\0\0\x18ftypisom"),
            None,
            "an MP4 is no HEIC"
        );
        assert_eq!(DocumentType::sniff(b"MZ\x90\0 a program"), None);
        assert_eq!(DocumentType::sniff(b"<html>"), None);
        assert_eq!(DocumentType::sniff(b""), None);
    }
}
