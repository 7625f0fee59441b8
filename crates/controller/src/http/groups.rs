//! Handlers of the security group routes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use cloison_model::{Rule, SecurityGroup, SecurityGroupSpec};

use super::error::{ApiJson, ErrorBody};
use crate::{Controller, ControllerError};

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, ControllerError>;

#[utoipa::path(post, path = "/v1/tenants/{tenant}/groups", request_body = SecurityGroupSpec, tag = "groups",
    responses((status = 201, body = SecurityGroup), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "a group of that name exists", body = ErrorBody)))]
pub(crate) async fn create_group(
    State(c): Ctl,
    Path(tenant): Path<String>,
    ApiJson(spec): ApiJson<SecurityGroupSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(c.create_group(&tenant, spec).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/groups", tag = "groups", responses((status = 200, body = [SecurityGroup])))]
pub(crate) async fn list_groups(State(c): Ctl, Path(tenant): Path<String>) -> ApiResult<Json<Vec<SecurityGroup>>> {
    Ok(Json(c.list_groups(&tenant).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/groups/{group}", tag = "groups",
    responses((status = 200, body = SecurityGroup), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_group(State(c): Ctl, Path((tenant, group)): Path<(String, String)>) -> ApiResult<Json<SecurityGroup>> {
    Ok(Json(c.get_group(&tenant, &group).await?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/groups/{group}", tag = "groups",
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "an endpoint lists the group or another group's rule names it", body = ErrorBody)))]
pub(crate) async fn delete_group(State(c): Ctl, Path((tenant, group)): Path<(String, String)>) -> ApiResult<StatusCode> {
    c.delete_group(&tenant, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a rule to a group and returns the group.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/groups/{group}/rules", request_body = Rule, tag = "groups",
    responses((status = 200, body = SecurityGroup), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the group already has this rule", body = ErrorBody)))]
pub(crate) async fn add_rule(
    State(c): Ctl,
    Path((tenant, group)): Path<(String, String)>,
    ApiJson(rule): ApiJson<Rule>,
) -> ApiResult<Json<SecurityGroup>> {
    Ok(Json(c.add_rule(&tenant, &group, rule).await?))
}

/// Removes the rule equal to the body from a group and returns the group.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/groups/{group}/rules", request_body = Rule, tag = "groups",
    responses((status = 200, body = SecurityGroup), (status = 404, description = "no such group or rule", body = ErrorBody)))]
pub(crate) async fn remove_rule(
    State(c): Ctl,
    Path((tenant, group)): Path<(String, String)>,
    ApiJson(rule): ApiJson<Rule>,
) -> ApiResult<Json<SecurityGroup>> {
    Ok(Json(c.remove_rule(&tenant, &group, rule).await?))
}
