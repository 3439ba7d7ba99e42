//! What a client machine needs to reach this server: the host names the
//! clients resolve (the one list, also the names of msngate's own server
//! certificate), the CA to trust, and per client family what else to set.
//! `msngate client-setup` prints it; `GET /setup` shows it as a page.

use crate::config::Config;
use std::fmt::Write as _;
use std::net::{IpAddr, ToSocketAddrs};

/// The client families, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// MSN Messenger 1.0–4.7 (MSNP2–7): MD5 sign-in over TCP only.
    Msn1,
    /// MSN Messenger 5.0–7.5 (MSNP8–12): Passport over HTTPS, then TCP.
    Msn5,
    /// Windows Live Messenger 8.0–2009 (MSNP13–18): the token service and
    /// the SOAP services over HTTPS, then TCP.
    Wlm,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Msn1, Family::Msn5, Family::Wlm];

    pub fn title(self) -> &'static str {
        match self {
            Family::Msn1 => "MSN Messenger 1.0–4.7 (MSNP2–7)",
            Family::Msn5 => "MSN Messenger 5.0–7.5 (MSNP8–12)",
            Family::Wlm => "Windows Live Messenger 8.0–2009 (MSNP13–18)",
        }
    }
}

/// A host name that clients have built in (or are sent to by one that is).
pub struct ClientHost {
    pub name: &'static str,
    /// What the client asks there.
    pub serves: &'static str,
    /// The families that dial it.
    pub families: &'static [Family],
}

use Family::{Msn1, Msn5, Wlm};

/// Every name the supported clients resolve to reach the service, from the
/// protocol references. Not listed, because msngate serves nothing there:
/// `gateway.messenger.hotmail.com` (the HTTP gateway fallback) and
/// `sup.live.com` (What's New, only called by third-party libraries).
pub const CLIENT_HOSTS: &[ClientHost] = &[
    ClientHost {
        name: "messenger.hotmail.com",
        serves: "dispatch/notification server (TCP 1863)",
        families: &[Msn1, Msn5, Wlm],
    },
    ClientHost {
        name: "nexus.passport.com",
        serves: "Passport nexus (/rdr/pprdr.asp)",
        families: &[Msn5],
    },
    ClientHost {
        name: "login.passport.com",
        serves: "Passport 1.4 login (/login2.srf), the historical DALogin host",
        families: &[Msn5],
    },
    ClientHost {
        name: "loginnet.passport.com",
        serves: "Passport login links of the URL command (/ppsecure/md5auth.srf)",
        families: &[Msn5],
    },
    ClientHost {
        name: "login.passport.net",
        serves: "token service (/RST.srf) of later 7.5 builds",
        families: &[Msn5],
    },
    ClientHost {
        name: "login.live.com",
        serves: "token service (/RST.srf, /RST2.srf)",
        families: &[Msn5, Wlm],
    },
    ClientHost {
        name: "msnia.login.live.com",
        serves: "token service fallback (/RST2.srf)",
        families: &[Wlm],
    },
    ClientHost {
        name: "contacts.msn.com",
        serves: "address book and sharing (/abservice/…)",
        families: &[Wlm],
    },
    ClientHost {
        name: "local-bay.contacts.msn.com",
        serves: "address book as WLM 2009 dials it",
        families: &[Wlm],
    },
    ClientHost {
        name: "byrdr.omega.contacts.msn.com",
        serves: "address book redirect host",
        families: &[Wlm],
    },
    ClientHost {
        name: "storage.msn.com",
        serves: "profile storage (/storageservice/SchematizedStore.asmx)",
        families: &[Wlm],
    },
    ClientHost {
        name: "tkrdr.storage.msn.com",
        serves: "profile storage redirect host",
        families: &[Wlm],
    },
    ClientHost {
        name: "ows.messenger.msn.com",
        serves: "offline messages, sending (/OimWS/oim.asmx)",
        families: &[Wlm],
    },
    ClientHost {
        name: "rsi.hotmail.com",
        serves: "offline messages, retrieval (/rsi/rsi.asmx)",
        families: &[Wlm],
    },
    ClientHost {
        name: "config.messenger.msn.com",
        serves: "client configuration (/Config/MsgrConfig.asmx, plain HTTP on port 80)",
        families: &[Wlm],
    },
];

/// Where the page with the set-up (and the CA download) is served.
pub const SETUP_PATH: &str = "/setup";
/// The CA as Windows imports it on a double-click (DER).
pub const CA_DOWNLOAD_PATH: &str = "/setup/msngate-ca.crt";

/// The host of `http.public_url` (without scheme, port or path).
pub fn public_url_host(config: &Config) -> Option<String> {
    let rest = config
        .http
        .public_url
        .split_once("://")
        .map_or(config.http.public_url.as_str(), |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The names msngate's own server certificate covers: every name of
/// [`CLIENT_HOSTS`], then `msn.public_host` and the host of
/// `http.public_url` (the `DALogin` host) when they are other names.
pub fn certificate_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = CLIENT_HOSTS.iter().map(|h| h.name.to_string()).collect();
    let extra = [
        Some(config.msn.public_host.to_ascii_lowercase()),
        public_url_host(config),
    ];
    for name in extra.into_iter().flatten() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The address for the hosts-file lines: `msn.public_host` itself when it
/// is an address, else what it resolves to here (a hosts file takes only
/// addresses).
fn hosts_address(public_host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = public_host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let resolved = (public_host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("{public_host} does not resolve here ({e})"))?;
    let addresses: Vec<IpAddr> = resolved.map(|a| a.ip()).collect();
    addresses
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{public_host} resolves to no address here"))
}

/// The set-up for one configured server, ready to print or to show.
pub struct Setup {
    /// Lines for a hosts file, `address  name` (or a placeholder address).
    pub hosts_lines: Vec<String>,
    /// Why the address is a placeholder, when it is.
    pub address_problem: Option<String>,
    /// Where the CA file is on this machine, when msngate made it.
    pub ca_file: Option<String>,
    /// URL of the CA download on the setup page.
    pub ca_url: Option<String>,
    /// SHA-1 thumbprint of the CA (what Windows shows), to compare before trusting.
    pub ca_thumbprint: Option<String>,
    /// Per family: its title and what to set.
    pub families: Vec<(Family, Vec<String>)>,
    /// Problems of the configuration that stop some clients.
    pub warnings: Vec<String>,
}

impl Setup {
    pub fn for_config(config: &Config) -> Setup {
        let (address, address_problem) = match hosts_address(&config.msn.public_host) {
            Ok(ip) => (ip.to_string(), None),
            Err(problem) => ("ADDRESS-OF-MSNGATE".to_string(), Some(problem)),
        };
        let hosts_lines = CLIENT_HOSTS
            .iter()
            .map(|h| format!("{address}  {}", h.name))
            .collect();
        let generated = config
            .http
            .tls
            .as_ref()
            .is_some_and(|tls| tls.uses_generated());
        let files = crate::certs::TlsFiles::in_data_dir(&config.data_dir);
        let ca_der = std::fs::read(&files.ca_download).ok();
        let (ca_file, ca_url, ca_thumbprint) = match (&config.http.tls, &ca_der) {
            (Some(tls), Some(der)) if tls.uses_generated() => (
                Some(files.ca_download.display().to_string()),
                Some(format!(
                    "{}{CA_DOWNLOAD_PATH}",
                    config.http.public_url.trim_end_matches('/')
                )),
                Some(thumbprint(der)),
            ),
            _ => (None, None, None),
        };
        let mut warnings = Vec::new();
        match &config.http.tls {
            None => warnings.push(
                "http.tls is not set: Passport is plain HTTP, so MSN Messenger 5.0 and later \
                 cannot sign in unless a TLS-terminating front end serves port 443. Set \
                 `http.tls: {}` and run `msngate tls init` for msngate's own certificate."
                    .to_string(),
            ),
            Some(_) if generated && ca_der.is_none() => warnings.push(format!(
                "no CA in {} yet: run `msngate tls init` (or start `msngate serve`).",
                files.dir.display()
            )),
            Some(_) => {}
        }
        if config.http.tls.is_some() && config.http.listen.port() != 443 {
            warnings.push(format!(
                "http.listen is port {}: official clients dial HTTPS on 443, so forward 443 \
                 to it or listen on 443.",
                config.http.listen.port()
            ));
        }
        let plain_on_80 = match (&config.http.tls, config.http.plain_listen) {
            (None, _) => config.http.listen.port() == 80,
            (Some(_), Some(plain)) => plain.port() == 80,
            (Some(_), None) => false,
        };
        if !plain_on_80 {
            warnings.push(
                "no plain-HTTP listener on port 80 (http.plain_listen): Windows Live Messenger \
                 fetches its configuration from http://config.messenger.msn.com and goes on \
                 without it, with defaults."
                    .to_string(),
            );
        }
        if public_url_host(config).is_some_and(|h| h.parse::<IpAddr>().is_ok()) {
            warnings.push(
                "http.public_url names an IP address: clients check the certificate against \
                 the name they dial, so use a name from the list (e.g. \
                 https://login.passport.com)."
                    .to_string(),
            );
        }
        let ca_step = if generated {
            "trust msngate's CA (step 2)"
        } else {
            "trust the CA that issued http.tls.certificate"
        };
        let families = Family::ALL
            .iter()
            .map(|&family| (family, family_steps(family, config, ca_step)))
            .collect();
        Setup {
            hosts_lines,
            address_problem,
            ca_file,
            ca_url,
            ca_thumbprint,
            families,
            warnings,
        }
    }

    /// The text `msngate client-setup` prints.
    pub fn to_text(&self, config: &Config) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Client set-up for msngate at {}\n",
            config.msn.public_host
        );
        let _ = writeln!(
            out,
            "1. Hosts file of each client machine (as administrator: \
             C:\\Windows\\System32\\drivers\\etc\\hosts on Windows NT, 2000, XP and later, \
             C:\\Windows\\hosts on 98 and ME), or the same names in your own DNS:\n"
        );
        if let Some(problem) = &self.address_problem {
            let _ = writeln!(
                out,
                "   ({problem}: put msngate's address in place of ADDRESS-OF-MSNGATE)\n"
            );
        }
        for line in &self.hosts_lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "\n2. Certificate authority to trust (MSN Messenger 5.0 and later):\n"
        );
        match (&self.ca_file, &self.ca_url, &self.ca_thumbprint) {
            (Some(file), Some(url), Some(thumbprint)) => {
                let _ = writeln!(
                    out,
                    "   file: {file}\n   download: {url}\n   SHA-1 thumbprint: {thumbprint}\n\n   \
                     Double-click it on the client machine, Install Certificate, \"Place all \
                     certificates in the following store\", Trusted Root Certification \
                     Authorities. Compare the thumbprint Windows shows (Details tab) with the one \
                     above before you trust it."
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "   {}",
                    if config
                        .http
                        .tls
                        .as_ref()
                        .is_some_and(|t| !t.uses_generated())
                    {
                        "the CA that issued http.tls.certificate (msngate did not make it)"
                    } else {
                        "none: msngate has no CA of its own yet (see the notes below)"
                    }
                );
            }
        }
        let _ = writeln!(out, "\n3. Per client family:");
        for (family, steps) in &self.families {
            let _ = writeln!(out, "\n   {}:", family.title());
            for step in steps {
                let _ = writeln!(out, "   - {step}");
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nNotes on this configuration:");
            for warning in &self.warnings {
                let _ = writeln!(out, "- {warning}");
            }
        }
        out
    }
}

fn family_steps(family: Family, config: &Config, ca_step: &str) -> Vec<String> {
    let names = |family: Family| {
        CLIENT_HOSTS
            .iter()
            .filter(|h| h.families.contains(&family))
            .map(|h| h.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tcp = format!(
        "reach TCP {} and the switchboard at {}",
        config.msn.listen.port(),
        config.switchboard_address()
    );
    match family {
        Family::Msn1 => vec![
            format!("hosts lines for: {}", names(Family::Msn1)),
            tcp,
            "needs auth.legacy_md5_login (on by default) and a password set while it was on"
                .to_string(),
        ],
        Family::Msn5 => vec![
            format!("hosts lines for: {}", names(Family::Msn5)),
            ca_step.to_string(),
            tcp,
            "Windows XP: SP3 (or SP2 with the SHA-256 update) to check msngate's certificate; \
             its HTTPS goes no further than TLS 1.0"
                .to_string(),
        ],
        Family::Wlm => vec![
            format!("hosts lines for: {}", names(Family::Wlm)),
            ca_step.to_string(),
            tcp,
        ],
    }
}

/// `AA:BB:…`, the SHA-1 of a DER certificate, as Windows' certificate
/// dialog shows it ("Thumbprint").
pub fn thumbprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Setup {
    /// The `/setup` page: the same content as [`Setup::to_text`], with the
    /// CA as a link.
    pub fn to_html(&self, config: &Config) -> String {
        let mut out = String::new();
        let host = escape(&config.msn.public_host);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>msngate client set-up</title></head>\n<body>\n<h1>Client set-up for msngate at {host}</h1>\n"
        );
        let _ = write!(
            out,
            "<h2>1. Hosts file</h2>\n<p>On each client machine, as administrator: \
             <code>C:\\Windows\\System32\\drivers\\etc\\hosts</code> on Windows NT, 2000, XP and \
             later, <code>C:\\Windows\\hosts</code> on 98 and ME. Or the same names in your own DNS.</p>\n"
        );
        if let Some(problem) = &self.address_problem {
            let _ = write!(
                out,
                "<p>{}: put msngate's address in place of ADDRESS-OF-MSNGATE.</p>\n",
                escape(problem)
            );
        }
        let _ = write!(out, "<pre>");
        for line in &self.hosts_lines {
            let _ = writeln!(out, "{}", escape(line));
        }
        let _ = write!(out, "</pre>\n<h2>2. Certificate authority to trust</h2>\n");
        match &self.ca_thumbprint {
            Some(thumbprint) => {
                let _ = write!(
                    out,
                    "<p><a href=\"{CA_DOWNLOAD_PATH}\">msngate-ca.crt</a> (SHA-1 thumbprint \
                     <code>{thumbprint}</code>). Open it, Install Certificate, \"Place all \
                     certificates in the following store\", Trusted Root Certification \
                     Authorities. Compare the thumbprint Windows shows with this one before you \
                     trust it, or copy the file from the server instead.</p>\n"
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<p>msngate has no CA of its own here; with <code>http.tls.certificate</code>, \
                     trust the CA that issued it.</p>\n"
                );
            }
        }
        let _ = write!(out, "<h2>3. Per client family</h2>\n");
        for (family, steps) in &self.families {
            let _ = write!(out, "<h3>{}</h3>\n<ul>\n", escape(family.title()));
            for step in steps {
                let _ = writeln!(out, "<li>{}</li>", escape(step));
            }
            let _ = writeln!(out, "</ul>");
        }
        if !self.warnings.is_empty() {
            let _ = write!(out, "<h2>Notes on this configuration</h2>\n<ul>\n");
            for warning in &self.warnings {
                let _ = writeln!(out, "<li>{}</li>", escape(warning));
            }
            let _ = writeln!(out, "</ul>");
        }
        let _ = writeln!(out, "</body></html>");
        out
    }
}
