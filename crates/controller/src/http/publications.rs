//! Handlers of the publication routes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use cloison_model::{Publication, PublicationSpec};

use super::error::{ApiJson, ErrorBody};
use crate::{Controller, ControllerError};

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, ControllerError>;

#[utoipa::path(post, path = "/v1/tenants/{tenant}/publications", request_body = PublicationSpec, tag = "publications",
    responses((status = 201, body = Publication), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the host port is taken on the endpoint's host", body = ErrorBody)))]
pub(crate) async fn publish(
    State(c): Ctl,
    Path(tenant): Path<String>,
    ApiJson(spec): ApiJson<PublicationSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(c.publish(&tenant, spec).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/publications", tag = "publications", responses((status = 200, body = [Publication])))]
pub(crate) async fn list_publications(State(c): Ctl, Path(tenant): Path<String>) -> ApiResult<Json<Vec<Publication>>> {
    Ok(Json(c.list_publications(Some(&tenant)).await?))
}

#[utoipa::path(get, path = "/v1/publications", tag = "publications", responses((status = 200, body = [Publication])))]
pub(crate) async fn list_all_publications(State(c): Ctl) -> ApiResult<Json<Vec<Publication>>> {
    Ok(Json(c.list_publications(None).await?))
}

/// Removes a publication named by its id or its name: `ENDPOINT-HOSTPORT-PROTOCOL`, or
/// `ENDPOINT-HOSTIP-HOSTPORT-PROTOCOL` when it is bound to one host address.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/publications/{publication}", tag = "publications",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn unpublish(State(c): Ctl, Path((tenant, publication)): Path<(String, String)>) -> ApiResult<StatusCode> {
    c.unpublish(&tenant, &publication).await?;
    Ok(StatusCode::NO_CONTENT)
}
