//! Attachments that each name their own format and file name: a repeated
//! `<attachment>` with `mimeType`, `fileName` and `content` becomes one
//! Converse block per item, a PNG as an image and a PDF as a document, as
//! the mapping's `format_from` / `name_from` read them beside each item;
//! an attribute of the attachment's own element works the same way. What
//! cannot work is refused at load with the mapping's position, and a
//! format Converse does not take is the caller's error naming the item.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use soapgate::contract::ContractSet;
use soapgate::converse::{ContentBlock, DocumentFormat, ImageFormat};
use soapgate::mapping::{CallMeta, MappingError, MappingSet};
use soapgate::soap::parse_envelope;
use soapgate::xml::{self, Limits};

const HEAD: &str = "service: Claims
operations:
  FileClaim:
    model:
      targets: [ { model: m } ]
    input:
      claim: claimId
";

fn contracts() -> ContractSet {
    soapgate::files::load_contracts(Path::new("tests/data/attachments"))
        .unwrap_or_else(|e| panic!("the claims contract: {e:?}"))
}

fn load(input: &str) -> Result<MappingSet, Vec<String>> {
    let yaml = format!(
        "{HEAD}{input}    prompt: \"Claim {{{{ claim }}}}\"\n    output: {{ structured: true }}\n"
    );
    MappingSet::load(&[(PathBuf::from("m.yaml"), yaml)], &contracts())
        .map_err(|e| e.iter().map(MappingError::to_string).collect())
}

/// `(fileName, mimeType, bytes)` per attachment; `photo` elements with
/// their `type` attribute.
fn request(
    attachments: &[(Option<&str>, Option<&str>, &[u8])],
    photos: &[(&str, &[u8])],
) -> String {
    let mut body = String::from("<c:claimId>CL-7</c:claimId>");
    for (name, mime, bytes) in attachments {
        body.push_str("<c:attachment>");
        if let Some(n) = name {
            body.push_str(&format!("<c:fileName>{n}</c:fileName>"));
        }
        if let Some(m) = mime {
            body.push_str(&format!("<c:mimeType>{m}</c:mimeType>"));
        }
        body.push_str(&format!(
            "<c:content>{}</c:content></c:attachment>",
            STANDARD.encode(bytes)
        ));
    }
    for (ty, bytes) in photos {
        body.push_str(&format!(
            "<c:photo type=\"{ty}\">{}</c:photo>",
            STANDARD.encode(bytes)
        ));
    }
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><c:FileClaim xmlns:c="urn:example:claims">{body}</c:FileClaim></s:Body></s:Envelope>"#
    )
}

/// The content blocks of the rendered request, or the render error.
fn render(set: &MappingSet, envelope: &str) -> Result<Vec<ContentBlock>, String> {
    let doc = xml::read(envelope.as_bytes(), None, &Limits::default()).expect("request XML");
    let env = parse_envelope(doc.root).expect("envelope");
    let meta = CallMeta {
        service: "Claims",
        operation: "FileClaim",
        correlation_id: "urn:uuid:00000000-0000-4000-8000-000000000007",
    };
    let plan = set.plan("Claims", "FileClaim").expect("mapped");
    let call = plan
        .render_request(&env.body, &meta)
        .map_err(|e| e.to_string())?;
    Ok(call.request.messages[0].content.clone())
}

/// Each block as `image png` / `document pdf "name"`, in order.
fn described(blocks: &[ContentBlock]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Image(i) => Some(format!("image {:?}", i.format)),
            ContentBlock::Document(d) => Some(format!("document {:?} {:?}", d.format, d.name)),
            _ => None,
        })
        .collect()
}

const FILES: &str = "      files: { path: \"attachment[]/content\", as: file, format_from: mimeType, name_from: fileName, format: pdf }\n";

#[test]
fn each_attachment_takes_the_format_and_name_beside_it() {
    let set = load(FILES).unwrap_or_else(|e| panic!("{e:?}"));
    let blocks = render(
        &set,
        &request(
            &[
                (Some("damage.png"), Some("image/png"), b"\x89PNG"),
                (Some("police report.PDF"), None, b"%PDF-1.7"),
                (None, Some("text/csv; charset=utf-8"), b"a,b"),
                (None, None, b"%PDF-1.4"),
            ],
            &[],
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        described(&blocks),
        [
            format!("image {:?}", ImageFormat::Png),
            // No MIME type beside it: the file name's extension decides.
            format!("document {:?} \"police report PDF\"", DocumentFormat::Pdf),
            format!("document {:?} \"files 3\"", DocumentFormat::Csv),
            // Neither: the mapping's own `format`.
            format!("document {:?} \"files 4\"", DocumentFormat::Pdf),
        ]
    );
}

#[test]
fn an_attribute_of_the_attachment_can_name_its_format() {
    let set = load("      photos: { path: \"photo[]\", as: image, format_from: \"@type\" }\n")
        .unwrap_or_else(|e| panic!("{e:?}"));
    let blocks = render(
        &set,
        &request(
            &[(None, None, b"x")],
            &[("image/jpeg", b"\xff\xd8"), ("webp", b"RIFF")],
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        described(&blocks),
        [
            format!("image {:?}", ImageFormat::Jpeg),
            format!("image {:?}", ImageFormat::Webp)
        ]
    );
}

#[test]
fn a_format_converse_does_not_take_names_the_attachment() {
    let set = load(FILES).unwrap_or_else(|e| panic!("{e:?}"));
    let err = render(
        &set,
        &request(
            &[
                (None, Some("image/png"), b"a"),
                (None, Some("application/zip"), b"PK"),
            ],
            &[],
        ),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "input files: attachment 2: format \"application/zip\" is not a document or image format Converse accepts"
    );
    // Without a fixed format, an attachment with nothing beside it cannot
    // be sent.
    let set =
        load("      files: { path: \"attachment[]/content\", as: file, format_from: mimeType }\n")
            .unwrap_or_else(|e| panic!("{e:?}"));
    let err = render(
        &set,
        &request(&[(None, Some("image/png"), b"a"), (None, None, b"b")], &[]),
    )
    .unwrap_err();
    assert!(
        err.contains("files") && err.contains("no format given"),
        "{err}"
    );
}

#[test]
fn what_cannot_stand_beside_an_attachment_is_a_load_error_with_its_position() {
    // (the input line, the text the error points at, what it says)
    let cases = [
        // Not an element beside the attachment.
        (
            "      files: { path: \"attachment[]/content\", as: file, format_from: mime }\n",
            "mime }",
            "mime",
        ),
        // Only a name beside it: no way up or down a list.
        (
            "      files: { path: \"attachment[]/content\", as: file, format_from: \"../detail\" }\n",
            "\"../detail\"",
            "without []",
        ),
        (
            "      files: { path: \"attachment[]/content\", as: file, format_from: \"x[]\" }\n",
            "\"x[]\"",
            "without []",
        ),
        // An element with children; a list.
        (
            "      photos: { path: \"photo[]\", as: image, format_from: detail }\n",
            "detail }",
            "has child elements",
        ),
        (
            "      photos: { path: \"photo[]\", as: image, format_from: attachment }\n",
            "attachment }",
            "attachment",
        ),
        (
            "      photos: { path: \"photo[]\", as: image, name_from: \"@type\" }\n",
            "\"@type\"",
            "images have no name",
        ),
        (
            "      other: { path: defaultType, format_from: claimId }\n",
            "claimId }",
            "only applies to as: document, image or file",
        ),
    ];
    for (input, needle, says) in cases {
        let at = format!("m.yaml:8:{}:", input.find(needle).expect("the needle") + 1);
        let errors = load(input)
            .err()
            .unwrap_or_else(|| panic!("{input}: loads"));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&at) && e.contains(says)),
            "{input}: expected {at} … {says}, got {errors:?}"
        );
    }
}
