//! `flow-filter`: keeps or drops network-flow records by address, port and protocol.
//!
//! Reads `src_addr`, `dst_addr` (`utf8`, IPv4 or IPv6 text), `src_port`, `dst_port` (`uint16`)
//! and `proto` (`uint8`). Parameters:
//!
//! ```json
//! {"mode": "drop", "cidrs": ["10.0.0.0/8", "fd00::/8"], "ports": [22, 443], "protocols": [6]}
//! ```
//!
//! **The rule.** A row *matches* when all of the rules that are given hold:
//!
//! * `cidrs` (non-empty): `src_addr` or `dst_addr` lies in one of the CIDRs;
//! * `ports` (non-empty): `src_port` or `dst_port` is one of the ports;
//! * `protocols` (non-empty): `proto` is one of them.
//!
//! An empty or missing list does not constrain, so with no lists every row matches.
//! `mode: "drop"` (the default) removes matching rows; `"keep"` keeps only matching rows.
//! A null value, or an address that does not parse, never satisfies its rule (so such a row does
//! not match a rule that needs it). IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) count as IPv4.
//! A bare address in `cidrs` means a single host. A CIDR that does not parse is refused at init
//! (`BAD_CONFIG`, naming it).

use std::net::IpAddr;

use serde::Deserialize;
use weir_sdk::prelude::*;

/// What to do with matching rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Remove matching rows.
    #[default]
    Drop,
    /// Keep only matching rows.
    Keep,
}

/// The parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Drop or keep matches.
    #[serde(default)]
    pub mode: Mode,
    /// Address ranges.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// IP protocol numbers.
    #[serde(default)]
    pub protocols: Vec<u8>,
}

/// An address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cidr {
    /// IPv4 network and mask.
    V4(u32, u32),
    /// IPv6 network and mask.
    V6(u128, u128),
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address.
    ///
    /// # Errors
    /// When the text is not a CIDR.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::new(format!("cidrs: `{text}` is not a CIDR"));
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        match addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical() {
            IpAddr::V4(a) => {
                let p = prefix.unwrap_or(32);
                if p > 32 {
                    return Err(bad());
                }
                let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
                Ok(Self::V4(u32::from(a) & mask, mask))
            }
            IpAddr::V6(a) => {
                let p = prefix.unwrap_or(128);
                if p > 128 {
                    return Err(bad());
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
                Ok(Self::V6(u128::from(a) & mask, mask))
            }
        }
    }

    /// Whether `addr` lies in the range.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr.to_canonical()) {
            (Self::V4(net, mask), IpAddr::V4(a)) => u32::from(a) & mask == *net,
            (Self::V6(net, mask), IpAddr::V6(a)) => u128::from(a) & mask == *net,
            _ => false,
        }
    }
}

/// The state built at init.
#[derive(Debug, Clone)]
pub struct State {
    mode: Mode,
    cidrs: Vec<Cidr>,
    ports: Vec<u16>,
    protocols: Vec<u8>,
}

/// Parses the CIDRs.
///
/// # Errors
/// Names the first CIDR that does not parse.
pub fn init(c: Config) -> Result<State> {
    Ok(State {
        mode: c.mode,
        cidrs: c
            .cidrs
            .iter()
            .map(|t| Cidr::parse(t))
            .collect::<Result<_>>()?,
        ports: c.ports,
        protocols: c.protocols,
    })
}

fn in_cidrs(cidrs: &[Cidr], addr: Option<&str>) -> bool {
    addr.and_then(|a| a.parse::<IpAddr>().ok())
        .is_some_and(|a| cidrs.iter().any(|c| c.contains(a)))
}

/// The filter.
///
/// # Errors
/// Never for a well-formed batch.
#[weir_sdk::filter(
    reads = [
        "src_addr: utf8",
        "dst_addr: utf8",
        "src_port: uint16",
        "dst_port: uint16",
        "proto: uint8",
    ],
    init = init,
)]
pub fn flow_filter(batch: &Batch, s: &State) -> Result<Selection> {
    let n = batch.num_rows();
    let mut matched = Selection::all(n);
    if !s.cidrs.is_empty() {
        let src = batch.utf8("src_addr")?;
        let dst = batch.utf8("dst_addr")?;
        matched.and(&Selection::from_fn(n, |i| {
            in_cidrs(&s.cidrs, src.get(i)) || in_cidrs(&s.cidrs, dst.get(i))
        }));
    }
    if !s.ports.is_empty() {
        let src = batch.u16("src_port")?;
        let dst = batch.u16("dst_port")?;
        let hit = |v: Option<u16>| v.is_some_and(|p| s.ports.contains(&p));
        matched.and(&Selection::from_fn(n, |i| {
            hit(src.get(i)) || hit(dst.get(i))
        }));
    }
    if !s.protocols.is_empty() {
        let proto = batch.u8("proto")?;
        let values = proto.values();
        let mut hit = Selection::from_fn(n, |i| s.protocols.contains(&values[i]));
        hit.and_validity(proto.validity());
        matched.and(&hit);
    }
    if s.mode == Mode::Drop {
        matched.invert();
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> Result<State> {
        init(weir_sdk::__rt::parse_json(json.as_bytes())?)
    }

    fn batch() -> Batch {
        let addrs =
            |v: &[Option<&str>]| -> Column { v.iter().copied().collect::<Utf8Builder>().into() };
        let ports =
            |v: &[Option<u16>]| -> Column { v.iter().copied().collect::<UInt16Builder>().into() };
        Batch::from_columns(vec![
            (
                "src_addr",
                addrs(&[
                    Some("10.1.2.3"),
                    Some("192.168.0.1"),
                    Some("fd00::1"),
                    Some("junk"),
                    None,
                ]),
            ),
            (
                "dst_addr",
                addrs(&[
                    Some("8.8.8.8"),
                    Some("::ffff:10.0.0.9"),
                    Some("2001:db8::1"),
                    Some("1.1.1.1"),
                    Some("1.1.1.1"),
                ]),
            ),
            (
                "src_port",
                ports(&[Some(5000), Some(22), Some(443), Some(1), None]),
            ),
            (
                "dst_port",
                ports(&[Some(443), Some(5000), Some(5000), Some(22), Some(22)]),
            ),
            (
                "proto",
                [Some(6u8), Some(6), Some(17), Some(6), None]
                    .into_iter()
                    .collect::<UInt8Builder>()
                    .into(),
            ),
        ])
    }

    fn kept(json: &str) -> Vec<usize> {
        flow_filter(&batch(), &state(json).unwrap())
            .unwrap()
            .iter_selected()
            .collect()
    }

    #[test]
    fn rules_combine_with_and() {
        assert_eq!(
            kept(r#"{"mode": "keep", "cidrs": ["10.0.0.0/8", "fd00::/8"]}"#),
            [0, 1, 2]
        );
        assert_eq!(
            kept(r#"{"mode": "drop", "cidrs": ["10.0.0.0/8", "fd00::/8"]}"#),
            [3, 4]
        );
        assert_eq!(kept(r#"{"mode": "keep", "ports": [22]}"#), [1, 3, 4]);
        assert_eq!(
            kept(r#"{"mode": "keep", "ports": [22], "protocols": [6]}"#),
            [1, 3]
        );
        assert_eq!(
            kept(
                r#"{"mode": "keep", "cidrs": ["10.0.0.0/8"], "ports": [443, 22], "protocols": [6]}"#
            ),
            [0, 1]
        );
        assert_eq!(kept(r#"{"mode": "keep"}"#), [0, 1, 2, 3, 4]);
        assert_eq!(kept("{}"), Vec::<usize>::new());
        assert_eq!(kept(r#"{"mode": "keep", "cidrs": ["1.1.1.1"]}"#), [3, 4]);
    }

    #[test]
    fn bad_cidrs_are_named() {
        for bad in ["10.0.0.0/33", "nope", "fd00::/129", "10.0.0.0/x"] {
            let e = state(&format!(r#"{{"cidrs": ["{bad}"]}}"#)).unwrap_err();
            assert!(e.message().contains(bad), "{e}");
        }
        assert!(state(r#"{"mode": "maybe"}"#).is_err());
    }
}
