//! The file-system side of contract loading: [`DiskFiles`] implements the
//! pure loader's [`Files`] trait with `std::fs`, and [`load_contracts`]
//! loads every `.wsdl` of a folder, [`load_mappings`] every mapping file.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::contract::{ContractSet, Files, LoadError, augment, wsdl};
use crate::mapping::{MappingSet, Mode};
use crate::xml::Pos;

#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFiles;

impl Files for DiskFiles {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }
}

/// Load every `*.wsdl` directly inside `dir`, in name order.
pub fn load_contracts(dir: &Path) -> Result<ContractSet, Vec<LoadError>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![LoadError::new(
            dir,
            Pos::default(),
            format!("cannot read the WSDL folder: {e}"),
        )]
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("wsdl"))
        })
        .collect();
    paths.sort();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    wsdl::load_all(&refs, &DiskFiles)
}

/// Load every `*.yaml`/`*.yml` directly inside `dir` and check it against
/// `contracts`. A missing folder means "nothing mapped yet", not an error.
pub fn load_mappings(dir: &Path, contracts: &ContractSet) -> Result<MappingSet, Vec<LoadError>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(MappingSet::default()),
        Err(e) => {
            return Err(vec![LoadError::new(
                dir,
                Pos::default(),
                format!("cannot read the mappings folder: {e}"),
            )]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml")
                })
        })
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(e) => errors.push(LoadError::new(
                &path,
                Pos::default(),
                format!("cannot read: {e}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    MappingSet::load(&files, contracts).map_err(|errs| {
        errs.into_iter()
            .map(|e| {
                LoadError::new(
                    e.path,
                    Pos {
                        line: e.line,
                        col: e.col,
                    },
                    e.message,
                )
            })
            .collect()
    })
}

/// The contracts as published: each contract with async request-response
/// operations (per `mappings`) gets its ticket and `Get{Op}Result`
/// additions (see [`augment`]); the others are kept as they are.
pub fn publish_contracts(
    contracts: ContractSet,
    mappings: &MappingSet,
) -> Result<ContractSet, Vec<LoadError>> {
    // Contract index -> async operation names.
    let mut by_contract: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for plan in mappings.plans() {
        if plan.mode() != Mode::Async || plan.is_one_way() {
            continue;
        }
        let Some((contract, _)) = contracts.service(plan.service()) else {
            continue;
        };
        if let Some(ix) = contracts
            .contracts
            .iter()
            .position(|c| Arc::ptr_eq(c, contract))
        {
            by_contract
                .entry(ix)
                .or_default()
                .insert(plan.operation().to_string());
        }
    }
    if by_contract.is_empty() {
        return Ok(contracts);
    }
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(contracts.contracts.len());
    for (ix, contract) in contracts.contracts.iter().enumerate() {
        let Some(ops) = by_contract.get(&ix) else {
            out.push(contract.clone());
            continue;
        };
        match augment::augment(contract, ops, &DiskFiles) {
            Ok(c) => {
                // A binding shared by two services makes an operation async
                // in both: a sync mapping of it would never run.
                for service in &c.services {
                    for op in service.operations.iter().filter(|o| o.is_ticketed()) {
                        if let Some(plan) = mappings.plan(&service.name, &op.name)
                            && plan.mode() == Mode::Sync
                        {
                            errors.push(LoadError::new(
                                plan.source(),
                                Pos::default(),
                                format!(
                                    "{}.{} is mapped sync, but it shares its binding with \
                                     a service that maps it async; map it async too",
                                    service.name, op.name
                                ),
                            ));
                        }
                    }
                }
                out.push(Arc::new(c));
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(ContractSet::new(out))
    } else {
        Err(errors)
    }
}
