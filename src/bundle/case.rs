//! CASE/UCO JSON-LD export of the custody graph.
//!
//! [CASE](https://caseontology.org) (Cyber-investigation Analysis Standard Expression) is the
//! investigation profile of UCO (Unified Cyber Ontology). [`case_graph`] writes the ledger as a
//! CASE 1.5.0 / UCO 1.5.0 JSON-LD document (checked with case-utils 0.18.0) (`@context` + `@graph`):
//!
//! * each distinct file content (by SHA-256) that an event used or stored: a
//!   `uco-observable:File` with a `FileFacet` (`fileName`, `filePath`, `sizeInBytes`) and a
//!   `ContentDataFacet` (`sizeInBytes`; `hash`: SHA256, and MD5/SHA1 when recorded). Its
//!   item IDs are `uco-core:externalReference`s (the first is also its `uco-core:name`); an
//!   output `case-investigation:wasDerivedFrom` the inputs of the event that stored it.
//! * each event: a `case-investigation:InvestigativeAction` with `uco-core:name` = the action,
//!   `uco-action:startTime` = `endTime` = the event time, `performer`, `instrument`,
//!   `environment`, `object` (the inputs), `result` (the outputs and their provenance record),
//!   `case-investigation:wasInformedBy` (the events that last stored its inputs),
//!   `uco-core:description` (the note; the parameters as RFC 8785 JSON; seq, hash, host and OS
//!   user), and `SEQ:HASH` as a `uco-core:externalReference`.
//! * the outputs of an event: a `case-investigation:ProvenanceRecord` (`uco-core:object` = the
//!   outputs, `case-investigation:exhibitNumber` = the event's exhibit).
//! * the examiner: a `uco-identity:Person`, the action's performer.
//! * each `tools` entry (custody, sqlite, the FFmpeg libraries): a `uco-tool:Tool` with
//!   `uco-tool:version`, an instrument of the action.
//! * the host: a `uco-observable:Device` with a `ComputerSpecificationFacet` (`hostname`), the
//!   action's `uco-action:environment`.
//! * each case number: a `case-investigation:Investigation` (`investigationForm` "case") whose
//!   `uco-core:object` lists everything its events touch: actions, provenance records, files,
//!   people, tools, hosts, and the agency.
//! * the agency (given, or recorded by `init`): a `uco-identity:Organization`.
//!
//! UCO 1.x puts `performer`, `instrument`, `object`, `result`, … directly on the action (the
//! 0.x `ActionReferencesFacet` no longer exists) and requires every UCO node to be an IRI, not a
//! blank node, so facets, hashes and external references carry `@id`s too.
//!
//! Hash methods and the investigation form are plain `xsd:string`s, as UCO/CASE 1.4 ask.
//! BLAKE3 is not in UCO's `HashNameVocab`, and `case_validate` (case-utils 0.18) rejects names
//! outside it, so BLAKE3 is left out here; the ledger and the bundle carry it.
//!
//! ## Node IRIs
//!
//! Every `@id` is `kb:KIND-UUID` with `kb:` = [`KB_NAMESPACE`] and UUID the RFC 4122 version-5
//! UUID (SHA-1, URL name space) of `urn:custody:KIND:` followed by the compact JSON array of the
//! node's key (`json.dumps(key, separators=(",", ":"), ensure_ascii=False)` in Python). Keys are
//! content or ledger facts (SHA-256 of a file, hash of an event, examiner, case number, …), so the
//! same ledger always gives the same graph, graphs of parts of one ledger merge without
//! duplicates, and the IRIs end in a UUID as UCO's identifier advisory asks.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::ledger::{Event, FileRef, canonical, private};

/// The namespace of node IRIs, bound to the `kb` prefix.
pub const KB_NAMESPACE: &str = "urn:custody:";

/// The CASE/UCO release the vocabulary follows.
pub const ONTOLOGY_VERSION: &str = "1.5.0";

/// The `@context`: every prefix the graph uses, and no other.
const CONTEXT: [(&str, &str); 9] = [
    ("case-investigation", "https://ontology.caseontology.org/case/investigation/"),
    ("kb", KB_NAMESPACE),
    ("uco-action", "https://ontology.unifiedcyberontology.org/uco/action/"),
    ("uco-core", "https://ontology.unifiedcyberontology.org/uco/core/"),
    ("uco-identity", "https://ontology.unifiedcyberontology.org/uco/identity/"),
    ("uco-observable", "https://ontology.unifiedcyberontology.org/uco/observable/"),
    ("uco-tool", "https://ontology.unifiedcyberontology.org/uco/tool/"),
    ("uco-types", "https://ontology.unifiedcyberontology.org/uco/types/"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
];

/// RFC 4122 name space ID for URLs, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
const NAMESPACE_URL: [u8; 16] =
    [0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8];

/// The custody graph of `events` (in ledger order, each with its event hash) as a CASE/UCO
/// JSON-LD document.
///
/// `agency` names the organization the investigations belong to; without it, the agency an
/// `init` event among `events` recorded (`params.agency`) is used, if any. People, hosts and
/// investigations are named within the agency, so exports of parts of one ledger share their
/// IRIs when they are given the same agency. The result depends on nothing but the arguments:
/// the same events give byte-identical JSON.
pub fn case_graph(events: &[(Event, String)], agency: Option<&str>) -> Value {
    let agency = agency.filter(|a| !a.is_empty()).map(str::to_owned).or_else(|| recorded_agency(events));
    let mut graph = Graph::new(agency);
    for (event, hash) in events {
        graph.add_event(event, hash);
    }
    graph.finish()
}

/// The agency recorded by the first `init` event, when it names one.
pub fn recorded_agency(events: &[(Event, String)]) -> Option<String> {
    events
        .iter()
        .filter(|(e, _)| e.action == "init")
        .find_map(|(e, _)| e.params.get("agency").and_then(Value::as_str).filter(|a| !a.is_empty()))
        .map(str::to_owned)
}

/// What the ledger says about one file content, gathered over all events.
struct FileNode {
    iri: String,
    sha256: String,
    /// Distinct values, in the order first seen.
    sizes: Vec<u64>,
    names: Vec<String>,
    items: Vec<String>,
    /// (hash method, whether it is in `HashNameVocab`, lowercase hex value).
    hashes: Vec<(&'static str, bool, String)>,
    derived_from: Vec<String>,
}

/// One `case-investigation:Investigation`: a case number and every node its events touch.
struct Investigation {
    case: String,
    members: Vec<String>,
    seen: HashSet<String>,
}

impl Investigation {
    fn add(&mut self, iri: &str) {
        if self.seen.insert(iri.to_owned()) {
            self.members.push(iri.to_owned());
        }
    }
}

/// The graph under construction. Lookup tables are hash maps, but everything emitted is kept in
/// vectors in the order first seen, so the output order depends only on the ledger order.
struct Graph {
    agency: Option<String>,
    files: Vec<FileNode>,
    file_index: HashMap<String, usize>,
    /// People, hosts and tools, in the order first seen.
    agents: Vec<Value>,
    agent_seen: HashSet<String>,
    investigations: Vec<Investigation>,
    investigation_index: HashMap<String, usize>,
    /// Actions, each followed by its provenance record, in ledger order.
    actions: Vec<Value>,
    /// The action that last stored each content (by SHA-256).
    last_producer: HashMap<String, String>,
}

impl Graph {
    fn new(agency: Option<String>) -> Self {
        Graph {
            agency,
            files: Vec::new(),
            file_index: HashMap::new(),
            agents: Vec::new(),
            agent_seen: HashSet::new(),
            investigations: Vec::new(),
            investigation_index: HashMap::new(),
            actions: Vec::new(),
            last_producer: HashMap::new(),
        }
    }

    /// The scope of names that mean something only within an agency (people, hosts, cases).
    fn scope(&self) -> &str {
        self.agency.as_deref().unwrap_or("")
    }

    fn add_event(&mut self, e: &Event, hash: &str) {
        let action = iri("investigative-action", &[hash]);
        // A release withholds the host, and the examiner when it is the OS account: no node
        // then stands for them.
        let person = (e.examiner != private::SHOWN).then(|| self.person(&e.examiner));
        let host = (e.host != private::SHOWN).then(|| self.host(&e.host));
        let tools: Vec<String> = e.tools.iter().map(|(name, version)| self.tool(name, version)).collect();
        let inputs = unique(e.inputs.iter().map(|f| self.file(f)));
        let outputs = unique(e.outputs.iter().map(|f| self.file(f)));

        for &o in &outputs {
            for &i in &inputs {
                if o != i {
                    let from = self.files[i].iri.clone();
                    push_new(&mut self.files[o].derived_from, from);
                }
            }
        }
        let informed_by = unique(inputs.iter().filter_map(|&i| self.last_producer.get(&self.files[i].sha256).cloned()));
        for &o in &outputs {
            self.last_producer.insert(self.files[o].sha256.clone(), action.clone());
        }

        let input_iris: Vec<String> = inputs.iter().map(|&i| self.files[i].iri.clone()).collect();
        let output_iris: Vec<String> = outputs.iter().map(|&o| self.files[o].iri.clone()).collect();
        let provenance = (!output_iris.is_empty()).then(|| iri("provenance-record", &[hash]));

        let mut node = typed(&action, "case-investigation:InvestigativeAction");
        node.insert("uco-core:name".into(), json!(e.action));
        node.insert("uco-core:description".into(), json!(action_description(e, hash)));
        node.insert(
            "uco-core:externalReference".into(),
            json!([{
                "@id": iri("external-reference", &["event", hash]),
                "@type": "uco-core:ExternalReference",
                "uco-core:definingContext": "custody ledger event, as SEQ:HASH (custody verify --against SEQ:HASH)",
                "uco-core:externalIdentifier": format!("{}:{hash}", e.seq),
            }]),
        );
        node.insert("uco-action:startTime".into(), date_time(&e.time));
        node.insert("uco-action:endTime".into(), date_time(&e.time));
        if let Some(person) = &person {
            node.insert("uco-action:performer".into(), reference(person));
        }
        if let Some(host) = &host {
            node.insert("uco-action:environment".into(), reference(host));
        }
        insert_references(&mut node, "uco-action:instrument", &tools);
        insert_references(&mut node, "uco-action:object", &input_iris);
        let results: Vec<String> = output_iris.iter().cloned().chain(provenance.clone()).collect();
        insert_references(&mut node, "uco-action:result", &results);
        insert_references(&mut node, "case-investigation:wasInformedBy", &informed_by);
        self.actions.push(Value::Object(node));

        if let Some(record) = &provenance {
            let mut node = typed(record, "case-investigation:ProvenanceRecord");
            node.insert(
                "uco-core:description".into(),
                json!(format!("The files stored by custody ledger event {} ({}).", e.seq, e.action)),
            );
            if let Some(exhibit) = &e.exhibit {
                node.insert("case-investigation:exhibitNumber".into(), json!(exhibit));
            }
            insert_references(&mut node, "uco-core:object", &output_iris);
            self.actions.push(Value::Object(node));
        }

        if let Some(case) = &e.case {
            let investigation = self.investigation(case);
            let members = [action].into_iter().chain(provenance).chain(person).chain(host).chain(tools);
            for member in members.chain(input_iris).chain(output_iris) {
                investigation.add(&member);
            }
        }
    }

    /// The IRI of the examiner's `uco-identity:Person`, adding it when new.
    fn person(&mut self, examiner: &str) -> String {
        let id = iri("person", &[self.scope(), examiner]);
        self.agent(&id, || {
            let mut node = typed(&id, "uco-identity:Person");
            node.insert("uco-core:name".into(), json!(examiner));
            node
        })
    }

    /// The IRI of the host's `uco-observable:Device`, adding it when new.
    fn host(&mut self, host: &str) -> String {
        let id = iri("device", &[self.scope(), host]);
        let facet = iri("computer-specification-facet", &[self.scope(), host]);
        self.agent(&id, || {
            let mut node = typed(&id, "uco-observable:Device");
            node.insert("uco-core:name".into(), json!(host));
            node.insert(
                "uco-core:hasFacet".into(),
                json!([{
                    "@id": facet,
                    "@type": "uco-observable:ComputerSpecificationFacet",
                    "uco-observable:hostname": host,
                }]),
            );
            node
        })
    }

    /// The IRI of a `uco-tool:Tool` (one per name and version), adding it when new.
    fn tool(&mut self, name: &str, version: &str) -> String {
        let id = iri("tool", &[name, version]);
        self.agent(&id, || {
            let mut node = typed(&id, "uco-tool:Tool");
            node.insert("uco-core:name".into(), json!(name));
            node.insert("uco-tool:version".into(), json!(version));
            if let Some(description) = tool_description(name) {
                node.insert("uco-core:description".into(), json!(description));
            }
            node
        })
    }

    fn agent(&mut self, id: &str, make: impl FnOnce() -> Map<String, Value>) -> String {
        if self.agent_seen.insert(id.to_owned()) {
            let node = make();
            self.agents.push(Value::Object(node));
        }
        id.to_owned()
    }

    /// The index of the file node for `f`'s content, merging what `f` says about it.
    fn file(&mut self, f: &FileRef) -> usize {
        let index = match self.file_index.get(&f.sha256) {
            Some(&i) => i,
            None => {
                self.files.push(FileNode {
                    iri: iri("file", &[f.sha256.as_str()]),
                    sha256: f.sha256.clone(),
                    sizes: Vec::new(),
                    names: Vec::new(),
                    items: Vec::new(),
                    hashes: Vec::new(),
                    derived_from: Vec::new(),
                });
                self.file_index.insert(f.sha256.clone(), self.files.len() - 1);
                self.files.len() - 1
            }
        };
        let node = &mut self.files[index];
        push_new(&mut node.sizes, f.size);
        if let Some(name) = &f.name {
            push_new(&mut node.names, name.clone());
        }
        if let Some(item) = &f.item {
            push_new(&mut node.items, item.clone());
        }
        let recorded = [
            ("SHA256", true, Some(f.sha256.as_str())),
            // BLAKE3 is left out: it is not in HashNameVocab, and a strict CASE validation
            // rejects names outside it. The ledger and the bundle manifests carry it.
            ("MD5", true, f.facts.get("md5").and_then(Value::as_str)),
            ("SHA1", true, f.facts.get("sha1").and_then(Value::as_str)),
        ];
        for (method, in_vocab, value) in recorded {
            if let Some(value) = value.filter(|v| is_hex(v)) {
                push_new(&mut node.hashes, (method, in_vocab, value.to_ascii_lowercase()));
            }
        }
        index
    }

    fn investigation(&mut self, case: &str) -> &mut Investigation {
        let index = match self.investigation_index.get(case) {
            Some(&i) => i,
            None => {
                let mut investigation =
                    Investigation { case: case.to_owned(), members: Vec::new(), seen: HashSet::new() };
                if let Some(agency) = &self.agency {
                    investigation.add(&iri("organization", &[agency.as_str()]));
                }
                self.investigations.push(investigation);
                self.investigation_index.insert(case.to_owned(), self.investigations.len() - 1);
                self.investigations.len() - 1
            }
        };
        &mut self.investigations[index]
    }

    /// The document: organization, investigations, people/hosts/tools, files, then the actions
    /// (each followed by its provenance record) in ledger order.
    fn finish(self) -> Value {
        let mut graph = Vec::new();
        if let Some(agency) = &self.agency {
            let mut node = typed(&iri("organization", &[agency.as_str()]), "uco-identity:Organization");
            node.insert("uco-core:name".into(), json!(agency));
            graph.push(Value::Object(node));
        }
        for investigation in &self.investigations {
            let id = iri("investigation", &[self.scope(), &investigation.case]);
            let mut node = typed(&id, "case-investigation:Investigation");
            node.insert("uco-core:name".into(), json!(investigation.case));
            node.insert(
                "case-investigation:investigationForm".into(),
                // A plain string, as CASE 1.4 asks (the vocabulary-typed literal is deprecated).
                json!("case"),
            );
            insert_references(&mut node, "uco-core:object", &investigation.members);
            graph.push(Value::Object(node));
        }
        graph.extend(self.agents);
        graph.extend(self.files.iter().map(file_node));
        graph.extend(self.actions);
        let context: Map<String, Value> = CONTEXT.iter().map(|&(p, ns)| (p.to_owned(), json!(ns))).collect();
        json!({"@context": context, "@graph": graph})
    }
}

/// The `uco-observable:File` node of one content.
fn file_node(f: &FileNode) -> Value {
    let key = f.sha256.as_str();
    let mut node = typed(&f.iri, "uco-observable:File");
    if let Some(name) = f.items.first().or(f.names.first()) {
        node.insert("uco-core:name".into(), json!(name));
    }
    let mut description = Vec::new();
    if f.names.len() > 1 {
        description.push(format!("Recorded in the custody ledger under the names: {}.", f.names.join("; ")));
    }
    if f.sizes.len() > 1 {
        let sizes: Vec<String> = f.sizes.iter().map(u64::to_string).collect();
        description.push(format!("The custody ledger records different sizes for this content: {}.", sizes.join(", ")));
    }
    if !description.is_empty() {
        node.insert("uco-core:description".into(), json!(description));
    }
    if !f.items.is_empty() {
        let references: Vec<Value> = f
            .items
            .iter()
            .map(|item| {
                json!({
                    "@id": iri("external-reference", &["item", key, item]),
                    "@type": "uco-core:ExternalReference",
                    "uco-core:definingContext": "custody item ID",
                    "uco-core:externalIdentifier": item,
                })
            })
            .collect();
        node.insert("uco-core:externalReference".into(), Value::Array(references));
    }

    let size = f.sizes.first().copied().unwrap_or(0);
    let mut file_facet = typed(&iri("file-facet", &[key]), "uco-observable:FileFacet");
    if let Some(name) = f.names.first() {
        let base = name.rsplit('/').next().unwrap_or(name);
        file_facet.insert("uco-observable:fileName".into(), json!(base));
        if base != name {
            file_facet.insert("uco-observable:filePath".into(), json!(name));
        }
    }
    file_facet.insert("uco-observable:sizeInBytes".into(), json!(size));
    let hashes: Vec<Value> = f
        .hashes
        .iter()
        .map(|&(method, in_vocab, ref value)| {
            let id = iri("hash", &[key, method, value]);
            // Plain strings, as UCO 1.4 asks; HashNameVocab lists the known names (not BLAKE3).
            let _ = in_vocab;
            let method = json!(method);
            json!({
                "@id": id,
                "@type": "uco-types:Hash",
                "uco-types:hashMethod": method,
                "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": value},
            })
        })
        .collect();
    let mut content_facet = typed(&iri("content-data-facet", &[key]), "uco-observable:ContentDataFacet");
    content_facet.insert("uco-observable:sizeInBytes".into(), json!(size));
    content_facet.insert("uco-observable:hash".into(), Value::Array(hashes));
    node.insert("uco-core:hasFacet".into(), json!([file_facet, content_facet]));
    insert_references(&mut node, "case-investigation:wasDerivedFrom", &f.derived_from);
    Value::Object(node)
}

/// The descriptions of an action: the examiner's note, the parameters, and where the ledger
/// event comes from.
fn action_description(e: &Event, hash: &str) -> Vec<String> {
    let mut description = Vec::new();
    if let Some(note) = e.note.as_deref().filter(|n| !n.is_empty()) {
        description.push(note.to_owned());
    }
    if !e.params.is_empty() {
        let params = Value::Object(e.params.clone());
        let text = canonical::encode(&params).unwrap_or_else(|_| params.to_string());
        description.push(format!("Parameters: {text}"));
    }
    description.push(format!(
        "custody ledger event {} (hash {hash}), recorded on host {} by operating-system user {}.",
        e.seq, e.host, e.os_user
    ));
    description
}

/// What a tool named in an event's `tools` map is.
fn tool_description(name: &str) -> Option<&'static str> {
    match name {
        "custody" => Some("custody, the chain-of-custody toolkit that recorded the ledger"),
        "sqlite" => Some("SQLite library"),
        _ if name.starts_with("libav") || name.starts_with("libsw") || name == "libpostproc" => Some("FFmpeg library"),
        _ => None,
    }
}

/// The IRI of a node: `kb:KIND-UUID`, where UUID is the version-5 UUID of `urn:custody:KIND:`
/// followed by the compact JSON array of `key`.
fn iri(kind: &str, key: &[&str]) -> String {
    let key = serde_json::to_string(key).expect("strings always serialize");
    format!("kb:{kind}-{}", uuid_v5(&format!("{KB_NAMESPACE}{kind}:{key}")))
}

/// The RFC 4122 version-5 (SHA-1, name-based) UUID of `name` in the URL name space.
fn uuid_v5(name: &str) -> String {
    let mut sha1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha1.update(&NAMESPACE_URL);
    sha1.update(name.as_bytes());
    let digest = sha1.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A node with its `@id` and `@type`.
fn typed(id: &str, ty: &str) -> Map<String, Value> {
    let mut node = Map::new();
    node.insert("@id".into(), json!(id));
    node.insert("@type".into(), json!(ty));
    node
}

/// A reference to the node `id`.
fn reference(id: &str) -> Value {
    json!({ "@id": id })
}

/// Set `property` to references to `ids`, unless there are none.
fn insert_references(node: &mut Map<String, Value>, property: &str, ids: &[String]) {
    if !ids.is_empty() {
        node.insert(property.into(), ids.iter().map(|id| reference(id)).collect());
    }
}

/// An `xsd:dateTime` literal (ledger times are RFC 3339 UTC with milliseconds, which is one).
fn date_time(time: &str) -> Value {
    json!({"@type": "xsd:dateTime", "@value": time})
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The distinct items of `items`, in order.
fn unique<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in items {
        push_new(&mut out, x);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::ledger::event::{GENESIS_PREV, event_hash};

    fn sha(byte: u8) -> String {
        hex::encode([byte; 32])
    }

    fn file(byte: u8, item: Option<&str>, name: Option<&str>) -> FileRef {
        FileRef {
            item: item.map(str::to_owned),
            name: name.map(str::to_owned),
            sha256: sha(byte),
            blake3: hex::encode([byte ^ 0xff; 32]),
            size: 1000 + u64::from(byte),
            facts: Map::new(),
        }
    }

    fn tools() -> BTreeMap<String, String> {
        [("custody", "0.1.0"), ("libavcodec", "59.37.100"), ("libavformat", "59.27.100"), ("sqlite", "3.50.4")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    struct Draft {
        action: &'static str,
        examiner: &'static str,
        case: Option<&'static str>,
        exhibit: Option<&'static str>,
        inputs: Vec<FileRef>,
        outputs: Vec<FileRef>,
        params: Value,
        note: Option<&'static str>,
    }

    fn draft(action: &'static str, case: Option<&'static str>) -> Draft {
        Draft {
            action,
            examiner: "Det. A. Ruiz #4411",
            case,
            exhibit: case.map(|_| "3"),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: json!({}),
            note: None,
        }
    }

    /// Chain the drafts into events, each with its real hash.
    fn ledger(drafts: Vec<Draft>) -> Vec<(Event, String)> {
        let mut prev = GENESIS_PREV.to_owned();
        let mut out = Vec::new();
        for (i, d) in drafts.into_iter().enumerate() {
            let event = Event {
                v: 1,
                seq: i as u64 + 1,
                prev: prev.clone(),
                time: format!("2024-05-01T15:{i:02}:00.000Z"),
                examiner: d.examiner.to_owned(),
                os_user: "aruiz".to_owned(),
                db_user: None,
                host: "evidence-ws-02".to_owned(),
                tools: tools(),
                action: d.action.to_owned(),
                case: d.case.map(str::to_owned),
                exhibit: d.exhibit.map(str::to_owned),
                inputs: d.inputs,
                outputs: d.outputs,
                params: d.params.as_object().cloned().unwrap(),
                note: d.note.map(str::to_owned),
                private: None,
            };
            let hash = event_hash(&event.encode().unwrap());
            prev = hash.clone();
            out.push((event, hash));
        }
        out
    }

    /// init; ingest A, B; clip A → C; still C → D; transfer A, C (another examiner); hash E and A
    /// (another case, another name for A); ingest A again as another item.
    fn sample() -> Vec<(Event, String)> {
        let a = || file(0xa1, Some("i1"), Some("cam1/a.mp4"));
        let mut b = file(0xb2, Some("i2"), Some("cam1/b.mp4"));
        b.facts.insert("md5".into(), json!("00112233445566778899aabbccddeeff"));
        b.facts.insert("acquisition".into(), json!("new object"));
        let c = || file(0xc3, Some("i3"), Some("a_clip.mp4"));
        let d = file(0xd4, Some("i4"), Some("a_still.png"));
        let e = file(0xe5, None, Some("/tmp/loose.mp4"));
        ledger(vec![
            Draft { params: json!({"agency": "Metro PD", "store": "/evidence"}), ..draft("init", None) },
            Draft {
                outputs: vec![a(), b],
                params: json!({"paths": ["/media/usb"], "deep": false}),
                note: Some("DVR export, channel 1"),
                ..draft("ingest", Some("24-1234"))
            },
            Draft {
                inputs: vec![a()],
                outputs: vec![c()],
                params: json!({"from": "00:01:00", "to": "00:02:00", "mode": "copy"}),
                ..draft("clip", Some("24-1234"))
            },
            Draft { inputs: vec![c()], outputs: vec![d], ..draft("still", Some("24-1234")) },
            Draft {
                examiner: "Sgt. B. Okafor",
                inputs: vec![a(), c()],
                params: json!({"from": "Det. A. Ruiz #4411", "to": "DA office", "reason": "review"}),
                ..draft("transfer", Some("24-1234"))
            },
            Draft { inputs: vec![e, file(0xa1, None, Some("/tmp/a-copy.mp4"))], ..draft("hash", Some("24-9999")) },
            Draft { outputs: vec![file(0xa1, Some("i9"), Some("a.mp4"))], ..draft("ingest", Some("24-9999")) },
        ])
    }

    fn graph_nodes(doc: &Value) -> &Vec<Value> {
        doc["@graph"].as_array().expect("@graph is an array")
    }

    fn types(node: &Value) -> Vec<&str> {
        match &node["@type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn of_type<'a>(doc: &'a Value, ty: &str) -> Vec<&'a Value> {
        graph_nodes(doc).iter().filter(|n| types(n).contains(&ty)).collect()
    }

    /// The `@id`s a property refers to (one reference or an array of them).
    fn refs<'a>(node: &'a Value, property: &str) -> Vec<&'a str> {
        match &node[property] {
            Value::Array(a) => a.iter().filter_map(|r| r["@id"].as_str()).collect(),
            Value::Object(o) => o.get("@id").and_then(Value::as_str).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn strings(v: &Value) -> Vec<&str> {
        match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Every node object (one with `@id` and something else) anywhere in the document, and every
    /// reference (an object with `@id` alone).
    fn walk<'a>(v: &'a Value, nodes: &mut Vec<&'a Map<String, Value>>, references: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(id) = o.get("@id").and_then(Value::as_str) {
                    if o.len() == 1 {
                        references.push(id);
                    } else {
                        nodes.push(o);
                    }
                }
                for (k, child) in o {
                    if k != "@context" {
                        walk(child, nodes, references);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|child| walk(child, nodes, references)),
            _ => {}
        }
    }

    fn nodes_by_id(doc: &Value) -> HashMap<&str, &Map<String, Value>> {
        let (mut nodes, mut references) = (Vec::new(), Vec::new());
        walk(doc, &mut nodes, &mut references);
        nodes.into_iter().map(|n| (n["@id"].as_str().unwrap(), n)).collect()
    }

    fn is_type(node: &Map<String, Value>, ty: &str) -> bool {
        types(&Value::Object(node.clone())).contains(&ty)
    }

    /// The structural rules every export must follow.
    fn check_well_formed(doc: &Value) {
        let context = doc["@context"].as_object().expect("@context is an object");
        let (mut nodes, mut references) = (Vec::new(), Vec::new());
        walk(doc, &mut nodes, &mut references);
        assert!(!nodes.is_empty());

        let mut ids = HashSet::new();
        for node in &nodes {
            let id = node["@id"].as_str().unwrap();
            assert!(ids.insert(id), "@id {id} is defined twice");
            assert!(id.starts_with("kb:"), "{id} is not in the kb: namespace");
            assert!(ends_with_uuid_v5(id), "{id} does not end with a version-5 UUID");
        }
        for r in &references {
            assert!(ids.contains(r), "reference to {r}, which is not in the graph");
        }

        let mut used = HashSet::new();
        collect_prefixes(doc, &mut used);
        for prefix in &used {
            assert!(context.contains_key(prefix.as_str()), "prefix {prefix} is used but not declared");
        }
        for prefix in context.keys() {
            assert!(used.contains(prefix), "prefix {prefix} is declared but not used");
        }
    }

    /// UCO requires IRIs (no blank nodes): every typed object that is not a literal has an @id.
    fn check_no_blank_nodes(v: &Value) {
        match v {
            Value::Object(o) => {
                if o.contains_key("@type") && !o.contains_key("@value") {
                    assert!(o.contains_key("@id"), "blank node: {}", Value::Object(o.clone()));
                }
                o.values().for_each(check_no_blank_nodes);
            }
            Value::Array(a) => a.iter().for_each(check_no_blank_nodes),
            _ => {}
        }
    }

    /// The prefixes of every compact IRI in property names, `@type`s and `@id`s.
    fn collect_prefixes(v: &Value, used: &mut HashSet<String>) {
        fn add(used: &mut HashSet<String>, s: &str) {
            let (prefix, _) = s.split_once(':').unwrap_or_else(|| panic!("{s} is not a compact IRI"));
            used.insert(prefix.to_owned());
        }
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    match k.as_str() {
                        "@context" => continue,
                        "@type" | "@id" => strings(child).into_iter().for_each(|s| add(used, s)),
                        keyword if keyword.starts_with('@') => {}
                        _ => add(used, k),
                    }
                    collect_prefixes(child, used);
                }
            }
            Value::Array(a) => a.iter().for_each(|child| collect_prefixes(child, used)),
            _ => {}
        }
    }

    /// UCO's advisory: "UcoThings are suggested to end with a UUID"; ours are version 5.
    fn ends_with_uuid_v5(id: &str) -> bool {
        let Some(tail) = id.len().checked_sub(36).and_then(|start| id.get(start..)) else { return false };
        let groups: Vec<&str> = tail.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            && groups[2].starts_with('5')
            && matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
    }

    #[test]
    fn uuid_v5_matches_rfc_4122() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "http://python.org/")
        assert_eq!(uuid_v5("http://python.org/"), "4c565f0d-3f5a-5890-b41b-20cf47701c5e");
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, 'urn:custody:file:["abab…ab"]'), the documented recipe.
        assert_eq!(iri("file", &[&"ab".repeat(32)]), "kb:file-33a1349b-6b65-5895-b148-dd57216c1609");
    }

    #[test]
    fn one_file_per_distinct_sha256_with_its_hashes() {
        let doc = case_graph(&sample(), None);
        let files = of_type(&doc, "uco-observable:File");
        assert_eq!(files.len(), 5, "A, B, C, D, E");
        let by_id = nodes_by_id(&doc);
        for byte in [0xa1u8, 0xb2, 0xc3, 0xd4, 0xe5] {
            let matching: Vec<&&Value> = files
                .iter()
                .filter(|f| {
                    f["uco-core:hasFacet"].as_array().unwrap().iter().any(|facet| {
                        facet["uco-observable:hash"].as_array().is_some_and(|hashes| {
                            hashes.iter().any(|h| {
                                h["uco-types:hashMethod"] == json!("SHA256")
                                    && h["uco-types:hashValue"]
                                        == json!({"@type": "xsd:hexBinary", "@value": sha(byte)})
                            })
                        })
                    })
                })
                .collect();
            assert_eq!(matching.len(), 1, "one File with SHA-256 {}", sha(byte));
            let content = matching[0]["uco-core:hasFacet"][1].clone();
            assert_eq!(content["@type"], "uco-observable:ContentDataFacet");
            assert_eq!(content["uco-observable:sizeInBytes"], 1000 + u64::from(byte));
            let methods: Vec<&Value> =
                content["uco-observable:hash"].as_array().unwrap().iter().map(|h| &h["uco-types:hashMethod"]).collect();
            assert!(methods.iter().all(|m| ["SHA256", "MD5", "SHA1"].contains(&m.as_str().unwrap())), "{methods:?}");
            assert!(by_id.contains_key(matching[0]["@id"].as_str().unwrap()));
        }

        let a = by_id[iri("file", &[&sha(0xa1)]).as_str()];
        assert_eq!(a["uco-core:name"], "i1", "the first item ID names the file");
        let items: Vec<&Value> = a["uco-core:externalReference"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["uco-core:externalIdentifier"])
            .collect();
        assert_eq!(items, [&json!("i1"), &json!("i9")]);
        let facet = &a["uco-core:hasFacet"][0];
        assert_eq!(facet["uco-observable:fileName"], "a.mp4");
        assert_eq!(facet["uco-observable:filePath"], "cam1/a.mp4");
        assert!(strings(&a["uco-core:description"])[0].contains("/tmp/a-copy.mp4"), "other names are kept");

        let b = by_id[iri("file", &[&sha(0xb2)]).as_str()];
        let md5 = &b["uco-core:hasFacet"][1]["uco-observable:hash"][1];
        assert_eq!(md5["uco-types:hashMethod"], "MD5");
        assert_eq!(md5["uco-types:hashValue"]["@value"], "00112233445566778899aabbccddeeff");
    }

    #[test]
    fn one_action_per_event_with_resolving_links() {
        let events = sample();
        let doc = case_graph(&events, None);
        let by_id = nodes_by_id(&doc);
        let actions = of_type(&doc, "case-investigation:InvestigativeAction");
        assert_eq!(actions.len(), events.len());
        for ((event, hash), action) in events.iter().zip(&actions) {
            assert_eq!(action["uco-core:name"], event.action.as_str());
            assert_eq!(action["uco-action:startTime"], json!({"@type": "xsd:dateTime", "@value": event.time}));
            assert_eq!(action["uco-action:endTime"], action["uco-action:startTime"]);
            assert_eq!(
                action["uco-core:externalReference"][0]["uco-core:externalIdentifier"],
                format!("{}:{hash}", event.seq)
            );

            let performer = refs(action, "uco-action:performer");
            assert_eq!(performer.len(), 1);
            let person = by_id[performer[0]];
            assert!(is_type(person, "uco-identity:Person"));
            assert_eq!(person["uco-core:name"], event.examiner.as_str());

            let instruments = refs(action, "uco-action:instrument");
            assert_eq!(instruments.len(), event.tools.len());
            for (id, (name, version)) in instruments.iter().zip(&event.tools) {
                let tool = by_id[id];
                assert!(is_type(tool, "uco-tool:Tool"));
                assert_eq!((&tool["uco-core:name"], &tool["uco-tool:version"]), (&json!(name), &json!(version)));
            }

            let host = by_id[refs(action, "uco-action:environment")[0]];
            assert!(is_type(host, "uco-observable:Device"));
            assert_eq!(host["uco-core:hasFacet"][0]["uco-observable:hostname"], "evidence-ws-02");

            let objects = refs(action, "uco-action:object");
            let inputs: HashSet<String> = event.inputs.iter().map(|f| iri("file", &[&f.sha256])).collect();
            assert_eq!(objects.iter().map(|s| s.to_string()).collect::<HashSet<_>>(), inputs);
            assert!(objects.iter().all(|id| is_type(by_id[id], "uco-observable:File")));

            let results = refs(action, "uco-action:result");
            let files: Vec<&str> =
                results.iter().copied().filter(|id| is_type(by_id[id], "uco-observable:File")).collect();
            let records: Vec<&str> = results
                .iter()
                .copied()
                .filter(|id| is_type(by_id[id], "case-investigation:ProvenanceRecord"))
                .collect();
            assert_eq!(files.len() + records.len(), results.len());
            let outputs: Vec<String> = event.outputs.iter().map(|f| iri("file", &[&f.sha256])).collect();
            assert_eq!(files, outputs);
            if outputs.is_empty() {
                assert!(records.is_empty(), "no provenance record without outputs");
            } else {
                assert_eq!(records.len(), 1);
                let record = by_id[records[0]];
                assert_eq!(refs(&Value::Object(record.clone()), "uco-core:object"), outputs);
                assert_eq!(record["case-investigation:exhibitNumber"], "3");
            }
        }
        assert_eq!(of_type(&doc, "uco-identity:Person").len(), 2, "people are deduplicated");
        assert_eq!(of_type(&doc, "uco-tool:Tool").len(), 4, "tools are deduplicated");
        assert_eq!(of_type(&doc, "uco-observable:Device").len(), 1);
        assert_eq!(of_type(&doc, "case-investigation:ProvenanceRecord").len(), 4);

        let clip = actions[2];
        let descriptions = strings(&clip["uco-core:description"]);
        assert!(descriptions.contains(&r#"Parameters: {"from":"00:01:00","mode":"copy","to":"00:02:00"}"#));
        assert!(descriptions.iter().any(|d| d.contains(&events[2].1) && d.contains("host evidence-ws-02")));
        assert!(strings(&actions[1]["uco-core:description"]).contains(&"DVR export, channel 1"));
    }

    #[test]
    fn provenance_between_actions_and_files() {
        let events = sample();
        let doc = case_graph(&events, None);
        let by_id = nodes_by_id(&doc);
        let action = |seq: usize| iri("investigative-action", &[&events[seq - 1].1]);
        let informed = |seq: usize| -> Vec<String> {
            refs(&Value::Object(by_id[action(seq).as_str()].clone()), "case-investigation:wasInformedBy")
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        assert!(informed(2).is_empty());
        assert_eq!(informed(3), [action(2)], "clip used what ingest stored");
        assert_eq!(informed(4), [action(3)], "still used what clip stored");
        assert_eq!(informed(5), [action(2), action(3)]);
        assert_eq!(informed(6), [action(2)]);

        let derived = |byte: u8| -> Vec<String> {
            refs(
                &Value::Object(by_id[iri("file", &[&sha(byte)]).as_str()].clone()),
                "case-investigation:wasDerivedFrom",
            )
            .into_iter()
            .map(str::to_owned)
            .collect()
        };
        assert_eq!(derived(0xc3), [iri("file", &[&sha(0xa1)])]);
        assert_eq!(derived(0xd4), [iri("file", &[&sha(0xc3)])]);
        assert!(derived(0xa1).is_empty());
    }

    #[test]
    fn investigations_and_agency() {
        let events = sample();
        let doc = case_graph(&events, None);
        let investigations = of_type(&doc, "case-investigation:Investigation");
        let names: Vec<&Value> = investigations.iter().map(|i| &i["uco-core:name"]).collect();
        assert_eq!(names, [&json!("24-1234"), &json!("24-9999")]);
        let orgs = of_type(&doc, "uco-identity:Organization");
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0]["uco-core:name"], "Metro PD", "the agency init recorded");
        let org = orgs[0]["@id"].as_str().unwrap();

        for (investigation, case) in investigations.iter().zip(["24-1234", "24-9999"]) {
            let members = refs(investigation, "uco-core:object");
            assert!(members.contains(&org));
            for (event, hash) in &events {
                let action = iri("investigative-action", &[hash]);
                assert_eq!(members.contains(&action.as_str()), event.case.as_deref() == Some(case));
                if event.case.as_deref() == Some(case) && !event.outputs.is_empty() {
                    assert!(members.contains(&iri("provenance-record", &[hash]).as_str()));
                }
            }
        }
        let init = iri("investigative-action", &[&events[0].1]);
        assert!(investigations.iter().all(|i| !refs(i, "uco-core:object").contains(&init.as_str())));

        let given = case_graph(&events, Some("County Sheriff"));
        let orgs = of_type(&given, "uco-identity:Organization");
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0]["uco-core:name"], "County Sheriff", "the agency given wins");
        check_well_formed(&given);

        let without = case_graph(&events[1..], None);
        assert!(of_type(&without, "uco-identity:Organization").is_empty());
        check_well_formed(&without);
    }

    #[test]
    fn ids_unique_references_resolve_prefixes_declared() {
        let doc = case_graph(&sample(), None);
        check_well_formed(&doc);
        check_no_blank_nodes(&doc);
        // The checks can fail.
        let id = "kb:x-33a1349b-6b65-5895-b148-dd57216c1609";
        let context = json!({"kb": KB_NAMESPACE});
        let undeclared = json!({"@context": context, "@graph": [{"@id": id, "@type": "uco-core:UcoObject"}]});
        assert!(panic_message(|| check_well_formed(&undeclared)).contains("prefix uco-core is used but not declared"));
        let dangling = json!({"@context": context, "@graph": [{"@id": id, "kb:p": {"@id": "kb:missing"}}]});
        assert!(panic_message(|| check_well_formed(&dangling)).contains("reference to kb:missing"));
        let twice = json!({"@context": context, "@graph": [{"@id": id, "kb:p": 1}, {"@id": id, "kb:p": 2}]});
        assert!(panic_message(|| check_well_formed(&twice)).contains("is defined twice"));
        let random =
            json!({"@context": context, "@graph": [{"@id": "kb:x-6f1c1fd0-3c3e-4b8e-9f55-1a6a0a7c0d7e", "kb:p": 1}]});
        assert!(panic_message(|| check_well_formed(&random)).contains("version-5 UUID"));
        let blank = json!({"@graph": [{"@id": id, "kb:p": {"@type": "uco-types:Hash"}}]});
        assert!(panic_message(|| check_no_blank_nodes(&blank)).contains("blank node"));

        let empty = case_graph(&[], None);
        assert_eq!(empty["@graph"], json!([]));
    }

    /// The message `check` panics with ("" if it does not panic).
    fn panic_message(check: impl FnOnce() + std::panic::UnwindSafe) -> String {
        match std::panic::catch_unwind(check) {
            Ok(()) => String::new(),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn deterministic() {
        let events = sample();
        let first = serde_json::to_string(&case_graph(&events, Some("Metro PD"))).unwrap();
        let second = serde_json::to_string(&case_graph(&events.clone(), Some("Metro PD"))).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            serde_json::to_string_pretty(&case_graph(&events, None)).unwrap(),
            serde_json::to_string_pretty(&case_graph(&events, None)).unwrap()
        );

        // Node IRIs come from the ledger, not from the position in the export: a part of the
        // ledger names the same actions and files the same way.
        let part = case_graph(&events[2..4], Some("Metro PD"));
        let whole = nodes_by_id(&serde_json::from_str::<Value>(&first).unwrap())
            .into_keys()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        for id in nodes_by_id(&part).into_keys() {
            assert!(whole.contains(id), "{id} of the part is not in the whole");
        }
    }

    /// The known-answer ledger (non-ASCII names, escapes, the largest exact integer, a transfer
    /// that records another size for the same content).
    #[test]
    fn known_answer_ledger() {
        let kat = include_str!("../../fixtures/ledger/kat-v1.jsonl");
        let events: Vec<(Event, String)> = kat
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                (serde_json::from_value(v["event"].clone()).unwrap(), v["hash"].as_str().unwrap().to_owned())
            })
            .collect();
        let doc = case_graph(&events, None);
        check_well_formed(&doc);
        check_no_blank_nodes(&doc);
        assert_eq!(of_type(&doc, "case-investigation:InvestigativeAction").len(), 3);
        let files = of_type(&doc, "uco-observable:File");
        assert_eq!(files.len(), 1);
        let f = files[0];
        assert_eq!(f["uco-core:hasFacet"][0]["uco-observable:fileName"], "ch01 caméra é€.h264");
        assert_eq!(f["uco-core:hasFacet"][1]["uco-observable:sizeInBytes"], 9007199254740991u64);
        assert!(strings(&f["uco-core:description"]).iter().any(|d| d.contains("9007199254740991, 0")));
        assert_eq!(of_type(&doc, "uco-identity:Organization")[0]["uco-core:name"], "Metro PD");
        let ingest = of_type(&doc, "case-investigation:InvestigativeAction")[1];
        assert!(strings(&ingest["uco-core:description"]).contains(&"line one\nline two \\ \u{1} end"));
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc, "round-trips as JSON");
    }
}
