//! Open multipart uploads: S3's `ListMultipartUploads` and
//! `AbortMultipartUpload`, for the interface `strata.blob.uploads.v1`.
//!
//! object_store has no call for either (it aborts the uploads it starts,
//! but cannot find the ones a killed process left), so these two requests
//! are made here: signed with object_store's own SigV4 signer
//! (`AwsAuthorizer`) and the credentials the store resolved (config keys,
//! `AWS_*` variables or instance metadata alike), sent with reqwest, the
//! answer read with quick-xml. Both are idempotent, so a failed one is
//! simply reported (the caller runs them again on the next prune).

use std::{sync::Arc, time::Duration};

use object_store::{
    aws::{AmazonS3, AwsAuthorizer},
    client::{HttpRequest, HttpRequestBody},
};
use serde::Deserialize;
use strata_plugin::blob::PendingUpload;

use crate::{config::S3Config, error::S3Error};

/// What the two requests need besides the store.
pub(crate) struct Uploads {
    http: reqwest::Client,
    /// The bucket's URL, ending in `/` (path style: `endpoint/bucket/`;
    /// virtual-hosted: `https://bucket.host/`).
    base: url::Url,
    region: String,
}

/// `ListMultipartUploadsResult`, the parts read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    #[serde(default, rename = "Upload")]
    uploads: Vec<UploadXml>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadXml {
    key: String,
    upload_id: String,
    #[serde(default)]
    initiated: Option<String>,
}

impl Uploads {
    pub(crate) fn new(cfg: &S3Config) -> Result<Uploads, S3Error> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
        if cfg.request_timeout_ms > 0 {
            http = http.timeout(Duration::from_millis(cfg.request_timeout_ms));
        }
        let http = http
            .build()
            .map_err(|e| S3Error::Config(format!("the HTTP client for uploads: {e}")))?;
        Ok(Uploads {
            http,
            base: cfg.bucket_url()?,
            region: cfg.region(),
        })
    }

    /// Sends a signed request with an empty body; the response body on a
    /// 2xx, else the store's error (404 as `not_found`).
    async fn send(
        &self,
        store: &AmazonS3,
        op: &'static str,
        key: &str,
        method: http::Method,
        url: url::Url,
    ) -> Result<String, S3Error> {
        let fail = |status: Option<u16>, message: String| S3Error::Http {
            op,
            key: key.to_string(),
            status,
            message,
        };
        let credential = store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| fail(None, format!("credentials: {e}")))?;
        let mut req: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| fail(None, e.to_string()))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut req, None)
            .map_err(|e| fail(None, format!("signing: {e}")))?;
        let mut out = self.http.request(method, url);
        for (name, value) in req.headers() {
            out = out.header(name, value);
        }
        let resp = out.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            fail(None, format!("{what}: {e}"))
        })?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| fail(Some(status.as_u16()), e.to_string()))?;
        if !status.is_success() {
            // S3's error document: `<Code>` and `<Message>` say why.
            let code = tag(&body, "Code").unwrap_or_default();
            let message = tag(&body, "Message").unwrap_or_default();
            return Err(fail(
                Some(status.as_u16()),
                format!("{status} {code} {message}").trim().to_string(),
            ));
        }
        Ok(body)
    }

    /// Every open upload whose full key starts with `full_prefix`, read to
    /// the last page; keys as stored (the caller strips its prefix).
    pub(crate) async fn list(
        &self,
        store: &Arc<AmazonS3>,
        full_prefix: &str,
    ) -> Result<Vec<PendingUpload>, S3Error> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut url = self.base.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("uploads", "");
                q.append_pair("prefix", full_prefix);
                if let Some((key, id)) = &markers {
                    q.append_pair("key-marker", key);
                    q.append_pair("upload-id-marker", id);
                }
            }
            let body = self
                .send(store, "list uploads", full_prefix, http::Method::GET, url)
                .await?;
            let page: ListResult = quick_xml::de::from_str(&body).map_err(|e| S3Error::Http {
                op: "list uploads",
                key: full_prefix.to_string(),
                status: None,
                message: format!("unreadable ListMultipartUploads answer: {e}"),
            })?;
            out.extend(page.uploads.into_iter().map(|u| {
                PendingUpload {
                    initiated_ms: u
                        .initiated
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.timestamp_millis()),
                    key: u.key,
                    upload_id: u.upload_id,
                }
            }));
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(k), Some(id)) if markers.as_ref() != Some(&(k.clone(), id.clone())) => {
                    markers = Some((k, id));
                }
                _ => break,
            }
        }
        out.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(out)
    }

    /// Aborts upload `upload_id` of the full key `full_key`; one that is
    /// gone (`NoSuchUpload`, 404) counts as aborted.
    pub(crate) async fn abort(
        &self,
        store: &Arc<AmazonS3>,
        full_key: &str,
        upload_id: &str,
    ) -> Result<(), S3Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| S3Error::Config("the bucket URL cannot take a key".into()))?
            .pop_if_empty()
            .extend(full_key.split('/'));
        url.query_pairs_mut().append_pair("uploadId", upload_id);
        match self
            .send(store, "abort upload", full_key, http::Method::DELETE, url)
            .await
        {
            Ok(_) => Ok(()),
            Err(S3Error::Http {
                status: Some(404), ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The text of the first `<name>…</name>` in `xml` (for error documents).
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_answer_is_read_with_escapes_and_pages() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/b&amp;c</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/a</Key><UploadId>id1</UploadId><Initiated>2026-12-06T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>p/b&amp;c</Key><UploadId>id2</UploadId><Initiated>2026-12-06T11:00:00Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let r: ListResult = quick_xml::de::from_str(xml).unwrap();
        assert!(r.is_truncated);
        assert_eq!(r.next_key_marker.as_deref(), Some("p/b&c"));
        assert_eq!(r.uploads.len(), 2);
        assert_eq!(r.uploads[1].key, "p/b&c");
        assert_eq!(r.uploads[0].upload_id, "id1");
        let empty: ListResult = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.uploads.is_empty() && !empty.is_truncated);
    }

    #[test]
    fn error_documents_give_code_and_message() {
        let xml = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        assert_eq!(tag(xml, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(tag(xml, "Message").as_deref(), Some("no"));
        assert_eq!(tag(xml, "Nope"), None);
    }
}
