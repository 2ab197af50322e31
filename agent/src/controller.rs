//! The agent's side of the controller API: long-poll the desired state, post
//! reports. Follows a 503's `leader` and rotates through the controller URLs.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use zkop_spec::tls::{NodeCertificateRequest, SignedCertificate};
use zkop_spec::wire::{AgentReport, ApiError, DesiredNodeState};

/// Why a call to the controller failed; all are retried.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// No connection, or no reply in time (the controller is down or restarting).
    #[error("controller {url} unreachable: {source}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The controller answered with an error status.
    #[error("controller {url} answered {status}: {body}")]
    Status {
        /// The URL tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body, as received.
        body: String,
    },
}

/// A client for one cluster's controllers. Clones share the HTTP client, so
/// a node certificate set on one is shown by all.
#[derive(Debug, Clone)]
pub struct ControllerClient {
    http: Arc<RwLock<reqwest::Client>>,
    /// The cluster CA's certificate, with TLS on: HTTPS trusts it alone.
    ca_pem: Option<String>,
    urls: Vec<String>,
    current: usize,
    token: String,
    /// This agent's own key, shown on every call (the controller binds it
    /// to the instance at first contact).
    agent_key: String,
    /// The instance's own address: calls leave from it, as the controller
    /// checks at first contact.
    local_address: Option<IpAddr>,
}

/// The header the agent's own key travels in.
pub const AGENT_KEY_HEADER: &str = "x-zkop-agent-key";

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the controller client: {0}")]
pub struct ClientSetupError(String);

fn build_http(
    ca_pem: Option<&str>,
    identity: Option<(&str, &str)>,
    local_address: Option<IpAddr>,
) -> Result<reqwest::Client, ClientSetupError> {
    zkop_zk::endpoint::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .local_address(local_address)
        .no_proxy();
    if let Some(ca) = ca_pem {
        let tls = zkop_zk::endpoint::client_config(ca, identity).map_err(ClientSetupError)?;
        builder = builder.use_preconfigured_tls(tls);
    }
    builder.build().map_err(|e| ClientSetupError(e.to_string()))
}

/// How long the controller may hold a long poll.
pub const LONG_POLL: Duration = Duration::from_secs(20);

impl ControllerClient {
    /// A client for these controller base URLs, authenticating with
    /// `token` and this agent's own `agent_key`, over HTTPS checked against
    /// `ca_pem` when given, leaving from `local_address` when given.
    pub fn new(
        urls: Vec<String>,
        token: String,
        agent_key: String,
        ca_pem: Option<String>,
        local_address: Option<IpAddr>,
    ) -> Result<Self, ClientSetupError> {
        let http = build_http(ca_pem.as_deref(), None, local_address)?;
        Ok(Self {
            http: Arc::new(RwLock::new(http)),
            ca_pem,
            urls,
            current: 0,
            token,
            agent_key,
            local_address,
        })
    }

    /// Shows this node certificate (chain and key PEM) from now on, in every clone.
    pub fn set_identity(&self, cert_pem: &str, key_pem: &str) -> Result<(), ClientSetupError> {
        let http = build_http(
            self.ca_pem.as_deref(),
            Some((cert_pem, key_pem)),
            self.local_address,
        )?;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        Ok(())
    }

    fn http(&self) -> reqwest::Client {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn base(&self) -> String {
        self.urls
            .get(self.current)
            .cloned()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string()
    }

    fn handle_failure(&mut self, err: ControllerError) -> ControllerError {
        if let ControllerError::Status {
            status: 503, body, ..
        } = &err
            && let Ok(api) = serde_json::from_str::<ApiError>(body)
            && let Some(leader) = api.leader
        {
            match self
                .urls
                .iter()
                .position(|u| u.trim_end_matches('/') == leader.trim_end_matches('/'))
            {
                Some(i) => self.current = i,
                None => {
                    self.urls.push(leader);
                    self.current = self.urls.len() - 1;
                }
            }
            return err;
        }
        // A refusal by the leader (4xx) is no reason to look for another.
        let refused =
            matches!(&err, ControllerError::Status { status, .. } if (400..500).contains(status));
        if !refused && !self.urls.is_empty() {
            self.current = (self.current + 1) % self.urls.len();
        }
        err
    }

    /// Sends a request with the token; a non-2xx answer is an error. Failures
    /// move on to the leader named in a 503, or to the next controller.
    async fn call(
        &mut self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ControllerError> {
        let unreachable = |source| ControllerError::Unreachable {
            url: url.to_string(),
            source,
        };
        let req = req
            .bearer_auth(&self.token)
            .header(AGENT_KEY_HEADER, &self.agent_key);
        let result = match req.send().await {
            Err(source) => Err(unreachable(source)),
            Ok(resp) if resp.status().is_success() => Ok(resp),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                Err(ControllerError::Status {
                    url: url.to_string(),
                    status,
                    body,
                })
            }
        };
        result.map_err(|e| self.handle_failure(e))
    }

    /// Long-polls the desired state newer than `after`.
    pub async fn desired(
        &mut self,
        instance: &str,
        after: u64,
    ) -> Result<DesiredNodeState, ControllerError> {
        let url = format!("{}/v1/agents/{instance}/desired?after={after}", self.base());
        let req = self
            .http()
            .get(&url)
            .timeout(LONG_POLL + Duration::from_secs(10));
        let resp = self.call(req, &url).await?;
        resp.json()
            .await
            .map_err(|source| ControllerError::Unreachable { url, source })
    }

    /// Posts a report.
    pub async fn report(&mut self, report: &AgentReport) -> Result<(), ControllerError> {
        let url = format!("{}/v1/agents/{}/report", self.base(), report.instance);
        let req = self
            .http()
            .post(&url)
            .timeout(Duration::from_secs(5))
            .json(report);
        self.call(req, &url).await.map(|_| ())
    }

    /// Asks the controller to sign this node's certificate request.
    pub async fn sign(
        &mut self,
        instance: &str,
        csr: String,
    ) -> Result<SignedCertificate, ControllerError> {
        let url = format!("{}/v1/agents/{instance}/certificate", self.base());
        let req = self
            .http()
            .post(&url)
            .timeout(Duration::from_secs(10))
            .json(&NodeCertificateRequest { csr });
        let resp = self.call(req, &url).await?;
        resp.json()
            .await
            .map_err(|source| ControllerError::Unreachable { url, source })
    }
}
