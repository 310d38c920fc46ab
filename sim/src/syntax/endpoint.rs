//! Endpoint and flow text: `x/a`, `node:node-1`, `svc:y/web`, `ext:internet`, `203.0.113.7`,
//! `2001:db8::7`; flows `x/a -> y/b:80/TCP`, `x/a -> y/b/ICMP`, `x/a -> [2001:db8::7]:443`.

use crate::values::Protocol;
use std::net::IpAddr;

/// An endpoint as written, not yet resolved against a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointRef {
    Pod { namespace: String, name: String },
    Node(String),
    Service { namespace: String, name: String },
    External(String),
    Addr(IpAddr),
}

/// A flow as written. `port` is None when none was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRef {
    pub from: EndpointRef,
    pub to: EndpointRef,
    pub port: Option<u16>,
    pub protocol: Protocol,
}

/// A parse error and the byte offset in the text where it was noticed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextError {
    pub offset: usize,
    pub message: String,
}

fn qualified(text: &str, what: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("`{text}` is not a {what}: expected namespace/name")),
    }
}

/// Parse one endpoint (without port).
pub fn parse_endpoint(text: &str) -> Result<EndpointRef, String> {
    let text = text.trim();
    if let Some(name) = text.strip_prefix("node:") {
        if name.is_empty() {
            return Err("`node:` needs a node name".into());
        }
        return Ok(EndpointRef::Node(name.to_string()));
    }
    if let Some(rest) = text.strip_prefix("svc:") {
        let (namespace, name) = qualified(rest, "service")?;
        return Ok(EndpointRef::Service { namespace, name });
    }
    if let Some(name) = text.strip_prefix("ext:") {
        if name.is_empty() {
            return Err("`ext:` needs an external name".into());
        }
        return Ok(EndpointRef::External(name.to_string()));
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(EndpointRef::Addr(ip));
    }
    if text.contains('/') {
        let (namespace, name) = qualified(text, "pod")?;
        return Ok(EndpointRef::Pod { namespace, name });
    }
    Err(format!(
        "`{text}` is not an endpoint: expected namespace/pod, node:NAME, svc:NAMESPACE/NAME, ext:NAME or an IP address"
    ))
}

/// Split `ENDPOINT[:PORT][/PROTOCOL]`.
fn parse_destination(text: &str) -> Result<(EndpointRef, Option<u16>, Option<Protocol>), String> {
    let mut rest = text.trim();
    let mut protocol = None;
    if let Some((head, tail)) = rest.rsplit_once('/') {
        if let Ok(p) = tail.parse::<Protocol>() {
            protocol = Some(p);
            rest = head;
        }
    }
    // A whole address (IPv6 included) has no port.
    if let Ok(ep) = parse_endpoint(rest) {
        if matches!(ep, EndpointRef::Addr(_)) {
            return Ok((ep, None, protocol));
        }
    }
    let (endpoint, port) = match rest.rsplit_once(':') {
        Some((head, tail))
            if !tail.is_empty()
                && tail.bytes().all(|b| b.is_ascii_digit())
                && !head.is_empty()
                && !matches!(head, "node" | "svc" | "ext") =>
        {
            let port: u32 = tail
                .parse()
                .map_err(|_| format!("port `{tail}` is out of range"))?;
            if !(1..=65535).contains(&port) {
                return Err(format!("port {port} is out of range: expected 1 to 65535"));
            }
            (head, Some(port as u16))
        }
        _ => (rest, None),
    };
    Ok((parse_endpoint(endpoint)?, port, protocol))
}

/// Parse `FROM -> TO[:PORT][/PROTOCOL]`. Protocol defaults to TCP; TCP, UDP and SCTP need
/// a port; ICMP has none.
pub fn parse_flow(text: &str) -> Result<FlowRef, TextError> {
    let Some(arrow) = text.find("->") else {
        return Err(TextError {
            offset: 0,
            message: format!("`{text}` is not a flow: expected `FROM -> TO:PORT/PROTOCOL`"),
        });
    };
    let from =
        parse_endpoint(&text[..arrow]).map_err(|message| TextError { offset: 0, message })?;
    let to_offset = arrow + 2 + (text[arrow + 2..].len() - text[arrow + 2..].trim_start().len());
    let err = |message: String| TextError {
        offset: to_offset,
        message,
    };
    let (to, port, protocol) = parse_destination(&text[arrow + 2..]).map_err(err)?;
    let protocol = protocol.unwrap_or(Protocol::Tcp);
    let port = check_port(port, protocol).map_err(err)?;
    Ok(FlowRef {
        from,
        to,
        port,
        protocol,
    })
}

/// A port must be given for TCP, UDP and SCTP and not for ICMP.
pub fn check_port(port: Option<u16>, protocol: Protocol) -> Result<Option<u16>, String> {
    match (port, protocol.has_ports()) {
        (Some(_), false) => Err("an ICMP flow has no port: write `FROM -> TO/ICMP`".into()),
        (None, true) => Err(format!(
            "a {protocol} flow needs a port: write `FROM -> TO:PORT/{protocol}` (IPv6 with a port: `[2001:db8::7]:443`)"
        )),
        (p, _) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> EndpointRef {
        EndpointRef::Pod {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn flows() {
        let f = parse_flow("x/a -> y/b:80/TCP").unwrap();
        assert_eq!(
            (f.from, f.to, f.port),
            (pod("x", "a"), pod("y", "b"), Some(80))
        );
        let f = parse_flow("x/a -> y/b/icmp").unwrap();
        assert_eq!((f.port, f.protocol), (None, Protocol::Icmp));
        let f = parse_flow("node:node-1 -> svc:y/web:8080/udp").unwrap();
        assert_eq!(f.from, EndpointRef::Node("node-1".into()));
        assert_eq!(f.port, Some(8080));
        assert_eq!(f.protocol, Protocol::Udp);
        let f = parse_flow("ext:internet -> x/a:80").unwrap();
        assert_eq!(f.protocol, Protocol::Tcp);
        let f = parse_flow("x/a -> [2001:db8::7]:443/TCP").unwrap();
        assert_eq!(f.to, EndpointRef::Addr("2001:db8::7".parse().unwrap()));
        assert_eq!(f.port, Some(443));
        let f = parse_flow("x/a -> 2001:db8::7/ICMP").unwrap();
        assert_eq!(f.to, EndpointRef::Addr("2001:db8::7".parse().unwrap()));
        assert!(parse_flow("x/a -> y/b")
            .unwrap_err()
            .message
            .contains("needs a port"));
        assert!(parse_flow("x/a -> y/b:70000").is_err());
        assert!(parse_flow("x/a y/b:80").is_err());
        assert!(parse_flow("x/a -> y/b:80/ICMP").is_err());
        assert!(parse_flow("a -> y/b:80").is_err());
    }
}
