//! Whether a new version's declared schema fits where the running version sits in the chain,
//! decided from the signed manifests alone (before anything is compiled).
//!
//! The rule: the new version must accept what the running version receives, and produce what
//! the running version produces, so that the policies after it and the sinks (whose files have
//! a schema) see the same columns with the same types.
//!
//! * Same kind (filter or transform) and the same passthrough mode.
//! * The same output columns (`writes`), in order, with the same types and nullability.
//! * Every required input column of the new version was read by the running version with the
//!   same type, or is in the schema of a recent live input batch with that type.
//! * With passthrough `unread`, the same set of read columns (they are consumed).

use arrow_schema::Schema;
use weir_abi::{Manifest, Passthrough, PolicyKind};

use crate::policy::abi::DeclaredSchema;

/// Why a new version does not fit; the message names the column and both types.
pub fn check_compatible(
    running: &Manifest,
    running_version: u64,
    next: &Manifest,
    next_version: u64,
    recent_inputs: &[&Schema],
) -> Result<(), String> {
    if running.kind != next.kind {
        return Err(format!(
            "version {running_version} is a {}, version {next_version} a {}",
            kind_name(running.kind),
            kind_name(next.kind)
        ));
    }
    if running.kind == PolicyKind::Transform && running.passthrough != next.passthrough {
        return Err(format!(
            "passthrough {:?} in version {running_version}, {:?} in version {next_version}: \
             the columns passed on would change",
            running.passthrough, next.passthrough
        ));
    }
    let old = DeclaredSchema::from_manifest(running).map_err(|e| e.to_string())?;
    let new = DeclaredSchema::from_manifest(next).map_err(|e| e.to_string())?;
    if running.kind == PolicyKind::Transform {
        for (i, (a, b)) in old.outputs.iter().zip(&new.outputs).enumerate() {
            if a.name != b.name || a.data_type != b.data_type || a.optional != b.optional {
                return Err(format!(
                    "output column {i}: `{}` {}{} in version {running_version}, `{}` {}{} in \
                     version {next_version}",
                    a.name,
                    a.data_type,
                    if a.optional { "?" } else { "" },
                    b.name,
                    b.data_type,
                    if b.optional { "?" } else { "" },
                ));
            }
        }
        if old.outputs.len() != new.outputs.len() {
            return Err(format!(
                "{} output columns in version {running_version}, {} in version {next_version}",
                old.outputs.len(),
                new.outputs.len()
            ));
        }
        if running.passthrough == Passthrough::Unread {
            fn names(m: &Manifest) -> Vec<&str> {
                let mut v: Vec<&str> = m.reads.iter().map(|c| c.name.as_str()).collect();
                v.sort_unstable();
                v
            }
            if names(running) != names(next) {
                return Err(format!(
                    "passthrough `unread` consumes the read columns, and version {next_version} \
                     reads {:?} where version {running_version} reads {:?}",
                    names(next),
                    names(running)
                ));
            }
        }
    }
    for input in new.inputs.iter().filter(|c| !c.optional) {
        let declared = old
            .inputs
            .iter()
            .any(|c| c.name == input.name && c.data_type == input.data_type);
        let live = recent_inputs.iter().any(|schema| {
            schema
                .field_with_name(&input.name)
                .is_ok_and(|f| f.data_type() == &input.data_type)
        });
        if !declared && !live {
            return Err(format!(
                "version {next_version} needs input column `{}` {}, which the running chain \
                 does not provide at this position",
                input.name, input.data_type
            ));
        }
    }
    Ok(())
}

fn kind_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Filter => "filter",
        PolicyKind::Transform => "transform",
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field};
    use weir_abi::ColumnDecl;

    use super::*;

    fn col(name: &str, ty: &str) -> ColumnDecl {
        ColumnDecl {
            name: name.into(),
            ty: ty.into(),
            optional: false,
        }
    }

    fn transform(reads: Vec<ColumnDecl>, writes: Vec<ColumnDecl>) -> Manifest {
        Manifest {
            abi_version: weir_abi::ABI_VERSION,
            name: "t".into(),
            crate_version: String::new(),
            sdk_version: String::new(),
            kind: PolicyKind::Transform,
            reads,
            writes,
            passthrough: Passthrough::All,
        }
    }

    #[test]
    fn same_schema_fits() {
        let m = transform(vec![col("a", "float64")], vec![col("b", "int64")]);
        assert_eq!(check_compatible(&m, 1, &m.clone(), 2, &[]), Ok(()));
    }

    #[test]
    fn changed_output_type_is_named() {
        let old = transform(vec![col("a", "float64")], vec![col("b", "int64")]);
        let new = transform(vec![col("a", "float64")], vec![col("b", "utf8")]);
        let err = check_compatible(&old, 3, &new, 4, &[]).unwrap_err();
        assert!(err.contains("`b` Int64 in version 3"), "{err}");
        assert!(err.contains("`b` Utf8 in version 4"), "{err}");
    }

    #[test]
    fn extra_output_and_kind_change_refused() {
        let old = transform(vec![col("a", "float64")], vec![col("b", "int64")]);
        let new = transform(
            vec![col("a", "float64")],
            vec![col("b", "int64"), col("c", "int64")],
        );
        assert!(check_compatible(&old, 1, &new, 2, &[]).is_err());
        let mut filter = old.clone();
        filter.kind = PolicyKind::Filter;
        filter.writes.clear();
        let err = check_compatible(&old, 1, &filter, 2, &[]).unwrap_err();
        assert!(err.contains("transform") && err.contains("filter"), "{err}");
    }

    #[test]
    fn new_input_must_exist_live() {
        let old = transform(vec![col("a", "float64")], vec![col("b", "int64")]);
        let new = transform(
            vec![col("a", "float64"), col("x", "int64")],
            vec![col("b", "int64")],
        );
        let err = check_compatible(&old, 1, &new, 2, &[]).unwrap_err();
        assert!(err.contains("`x`"), "{err}");
        let live = Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("x", DataType::Int64, true),
        ]);
        assert_eq!(check_compatible(&old, 1, &new, 2, &[&live]), Ok(()));
        let wrong = Schema::new(vec![Field::new("x", DataType::Utf8, true)]);
        assert!(check_compatible(&old, 1, &new, 2, &[&wrong]).is_err());
    }
}
