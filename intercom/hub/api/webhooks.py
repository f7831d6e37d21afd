"""``/v1/webhooks``: the URLs told of every call, leg and recording event (see
:mod:`intercom.hub.webhooks` for the sending)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..callflows import http_url
from ..records import Webhook
from .common import HubStorage, Pages, body_schema, json_body, validated
from .errors import not_found
from .views import One, Page, WebhookView

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(alias="webhookId")]


class WebhookRequest(BaseModel):
    """A webhook to add: where to POST, and the token that signs each request."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="An http or https URL")
    token: str = Field(min_length=1, max_length=200, description="Signs MessageBird-Signature-JWT (HS256)")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        return http_url(url, "url")

    def webhook(self) -> Webhook:
        return Webhook(url=self.url, token=self.token)


@router.post("", status_code=201, openapi_extra=body_schema(WebhookRequest))
async def create_webhook(request: Request, storage: HubStorage) -> One[WebhookView]:
    webhook = storage.put(validated(WebhookRequest, await json_body(request), whole="webhook").webhook())
    return One[WebhookView](data=[WebhookView.of(webhook)])


@router.get("")
async def list_webhooks(storage: HubStorage, paging: Pages) -> Page[WebhookView]:
    webhooks, total = storage.page(Webhook, paging.offset, paging.per_page)
    return paging.of([WebhookView.of(webhook) for webhook in webhooks], total)


@router.get("/{webhookId}")
async def get_webhook(webhook_id: WebhookId, storage: HubStorage) -> One[WebhookView]:
    webhook = storage.get(Webhook, webhook_id)
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return One[WebhookView](data=[WebhookView.of(webhook)])


@router.delete("/{webhookId}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: WebhookId, storage: HubStorage) -> Response:
    if not storage.delete(Webhook, webhook_id):
        raise not_found("webhook", webhook_id)
    return Response(status_code=204)
