//! Two network namespaces joined by a veth pair, made by the test itself (root and Debian's
//! iproute2), for the tests that need a real link to cut or to shape.

use super::Proc;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Runs `ip ARGS`; the error text if it failed.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair, removed on drop.
pub struct Net {
    /// The exporter's namespace.
    pub a: String,
    /// The importer's namespace.
    pub b: String,
    /// The veth end in `a`.
    pub veth_a: String,
    /// The veth end in `b`.
    pub veth_b: String,
    /// The address of `veth_a`.
    pub addr_a: String,
}

impl Net {
    /// The namespaces and the veth pair; whatever part was made is removed again (by drop)
    /// if a later step fails.
    pub fn make() -> Result<Net, String> {
        let tag = std::process::id() % 100_000;
        let net = Net {
            a: format!("shmkit-zb-a{tag}"),
            b: format!("shmkit-zb-b{tag}"),
            veth_a: format!("zba{tag}"),
            veth_b: format!("zbb{tag}"),
            addr_a: format!("10.213.{}.1", tag % 250),
        };
        let veth_b = net.veth_b.clone();
        let addr_b = format!("10.213.{}.2/24", tag % 250);
        ip(&["netns", "add", &net.a])?;
        ip(&["netns", "add", &net.b])?;
        ip(&[
            "link",
            "add",
            &net.veth_a,
            "netns",
            &net.a,
            "type",
            "veth",
            "peer",
            "name",
            &veth_b,
            "netns",
            &net.b,
        ])?;
        let a_cidr = format!("{}/24", net.addr_a);
        ip(&["-n", &net.a, "addr", "add", &a_cidr, "dev", &net.veth_a])?;
        ip(&["-n", &net.b, "addr", "add", &addr_b, "dev", &veth_b])?;
        for (ns, dev) in [(&net.a, &net.veth_a), (&net.b, &veth_b)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // The cut must be silent, so it is tried once here, before anything depends on it.
        net.cut(true)?;
        net.cut(false)?;
        Ok(net)
    }

    /// Cuts (or mends) the link silently: a `blackhole` queueing discipline on both ends drops
    /// every packet sent, so neither side sees a reset, an unreachable route or a carrier loss
    /// (setting the link down would: the kernel then fails the sends at once).
    pub fn cut(&self, cut: bool) -> Result<(), String> {
        for (ns, dev) in [(&self.a, &self.veth_a), (&self.b, &self.veth_b)] {
            let args: &[&str] = if cut {
                &["qdisc", "replace", "dev", dev, "root", "blackhole"]
            } else {
                &["qdisc", "del", "dev", dev, "root"]
            };
            ip(&[&["netns", "exec", ns, "tc"][..], args].concat())?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// A bridge run inside namespace `ns`, up once it says so.
pub fn bridge_in(ns: &str, args: &[&str]) -> Proc {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_shmkit-zenoh")])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ip netns exec runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains(" up:"), "bridge {args:?} said {line:?}");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Proc(child)
}

impl Net {
    /// Shapes what `a` sends to `rate` (a `tc` rate: `200mbit`) with a token bucket, as a
    /// slower link would.
    pub fn shape(&self, rate: &str) -> Result<(), String> {
        #[rustfmt::skip]
        let args = ["netns", "exec", &self.a, "tc", "qdisc", "replace", "dev", &self.veth_a,
            "root", "tbf", "rate", rate, "burst", "256kb", "latency", "100ms"];
        ip(&args)
    }
}
