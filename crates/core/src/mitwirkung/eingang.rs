//! The follow-up record *Nachweiseingang*: tells ALLEGRO that a document
//! owed has arrived after the import record was written. Its layout is
//! `schemas/allegro-nachweiseingang-1.0.xsd`; it goes through the same
//! outbox as the import records, as `<antragId>-nachweis-<id>.xml`.

use chrono::NaiveDate;
use uuid::Uuid;

use super::state::Eingangsweg;

/// The XML namespace of version 1.0.
pub const NAMESPACE: &str = "urn:allegro-bridge:nachweiseingang:1.0";

/// What the record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nachweiseingang<'a> {
    /// This record's own id (the outbox key and the sink's `message_id`).
    pub id: Uuid,
    pub antrag_id: Uuid,
    pub kind: &'a str,
    pub person_id: Option<&'a str>,
    /// The rule and place that asked for the document.
    pub rule: &'a str,
    pub pointer: &'a str,
    pub received_on: NaiveDate,
    pub via: Eingangsweg,
    pub file_sha256: Option<&'a str>,
    pub file_ref: Option<&'a str>,
}

/// The outbox file name: `<antragId>-nachweis-<id>.xml`.
pub fn file_name(antrag_id: Uuid, id: Uuid) -> String {
    format!("{antrag_id}-nachweis-{id}.xml")
}

impl Nachweiseingang<'_> {
    /// The record as UTF-8 XML.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut x = String::with_capacity(640);
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<Nachweiseingang xmlns=\"{NAMESPACE}\" version=\"1.0\" id=\"{}\">\n",
            self.id
        ));
        x.push_str(&format!("  <AntragId>{}</AntragId>\n", self.antrag_id));
        let mut attrs = vec![("art", self.kind)];
        attrs.extend(self.person_id.map(|p| ("personId", p)));
        attrs.extend([("regel", self.rule), ("feld", self.pointer)]);
        element(&mut x, "Nachweis", &attrs);
        x.push_str(&format!(
            "  <EingegangenAm>{}</EingegangenAm>\n",
            self.received_on
        ));
        x.push_str(&format!("  <Weg>{}</Weg>\n", self.via.as_str()));
        let mut file = Vec::new();
        file.extend(self.file_sha256.map(|h| ("sha256", h)));
        file.extend(self.file_ref.map(|r| ("referenz", r)));
        if !file.is_empty() {
            element(&mut x, "Datei", &file);
        }
        x.push_str("  <Herkunft>\n");
        x.push_str(&format!(
            "    <BridgeVersion>{}</BridgeVersion>\n",
            env!("CARGO_PKG_VERSION")
        ));
        x.push_str("  </Herkunft>\n</Nachweiseingang>\n");
        x.into_bytes()
    }
}

/// An empty element with escaped attributes, on its own line.
fn element(x: &mut String, name: &str, attrs: &[(&str, &str)]) {
    x.push_str("  <");
    x.push_str(name);
    for (k, v) in attrs {
        x.push_str(&format!(" {k}=\"{}\"", escape(v)));
    }
    x.push_str("/>\n");
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_part_escaped() {
        let id = Uuid::from_u128(1);
        let antrag = Uuid::from_u128(2);
        let r = Nachweiseingang {
            id,
            antrag_id: antrag,
            kind: "LOHNABRECHNUNG",
            person_id: Some("p1"),
            rule: "NACHWEIS-LOHNABRECHNUNG",
            pointer: "/einkommen/0",
            received_on: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            via: Eingangsweg::Nachreichung,
            file_sha256: None,
            file_ref: Some("a&b\"<c>"),
        };
        let xml = String::from_utf8(r.to_xml()).unwrap();
        assert!(xml.contains(&format!("<AntragId>{antrag}</AntragId>")));
        assert!(xml.contains(r#"<Nachweis art="LOHNABRECHNUNG" personId="p1" regel="NACHWEIS-LOHNABRECHNUNG" feld="/einkommen/0"/>"#));
        assert!(xml.contains("<EingegangenAm>2026-12-03</EingegangenAm>"));
        assert!(
            xml.contains(r#"<Datei referenz="a&amp;b&quot;&lt;c&gt;"/>"#),
            "{xml}"
        );
        assert_eq!(file_name(antrag, id), format!("{antrag}-nachweis-{id}.xml"));
    }
}
