"""``/webhooks``: the URLs told of every call, leg and recording event (see
:mod:`intercom.hub.webhooks` for the sending).

Every delivery is signed with its webhook's token. MessageBird lets a webhook be made without
one; here that would make every delivery unsigned, which a receiver could not tell from a
forgery: so the hub makes a token when none is sent, and the answer carries it.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..callflows import Problem, http_url
from ..records import Webhook
from .call_flows import without_read_only
from .common import HubStorage, Pages, body_schema, json_body, validated
from .errors import ApiError, not_found
from .views import One, Page, WebhookView

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(alias="webhookId")]
TOKEN_BYTES = 32  # a generated token: 256 bits, as HS256 wants of its key

Url = Annotated[
    str, Field(max_length=2000, description="An http or https URL"), AfterValidator(lambda url: http_url(url, "url"))
]
Token = Annotated[str, Field(min_length=1, max_length=200, description="Signs MessageBird-Signature-JWT (HS256)")]
Title = Annotated[str, Field(max_length=200, description="A name for people; the hub does nothing with it")]


class CallWebhook(BaseModel):
    """A call's own webhook: where to POST its events, and the token that signs them."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    token: Token
    title: Title | None = None

    def webhook(self) -> Webhook:
        return Webhook(url=self.url, token=self.token, title=self.title)


class WebhookRequest(CallWebhook):
    """A webhook to add; without ``token`` the hub makes one (in the answer)."""

    token: Token | None = None  # type: ignore[assignment]

    def webhook(self) -> Webhook:
        return Webhook(url=self.url, token=self.token or secrets.token_urlsafe(TOKEN_BYTES), title=self.title)


class WebhookUpdate(BaseModel):
    """What changes in a webhook: each field given (``null`` or left out: unchanged)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="If given, the id of the webhook updated")
    url: Url | None = None
    token: Token | None = None
    title: Title | None = None


@router.post("", status_code=201, openapi_extra=body_schema(WebhookRequest))
async def create_webhook(request: Request, storage: HubStorage) -> One[WebhookView]:
    wanted = validated(WebhookRequest, await json_body(request), whole="webhook")
    webhook = await storage.put(wanted.webhook())
    if wanted.token is None:
        log.info("webhook %s to %s: no token given; the hub made one, sent in the answer", webhook.id, webhook.url)
    return One[WebhookView](data=[WebhookView.of(webhook)])


@router.get("")
async def list_webhooks(storage: HubStorage, paging: Pages) -> Page[WebhookView]:
    webhooks, total = await storage.page(Webhook, paging.offset, paging.per_page)
    return paging.of([WebhookView.of(webhook) for webhook in webhooks], total)


@router.get("/{webhookId}")
async def get_webhook(webhook_id: WebhookId, storage: HubStorage) -> One[WebhookView]:
    return One[WebhookView](data=[WebhookView.of(await _webhook(storage, webhook_id))])


@router.put("/{webhookId}", openapi_extra=body_schema(WebhookUpdate))
async def update_webhook(webhook_id: WebhookId, request: Request, storage: HubStorage) -> One[WebhookView]:
    """Change the fields given; ``createdAt`` and ``updatedAt`` in a body are the hub's and ignored.
    Deliveries already queued keep the URL and token they were queued with."""
    webhook = await _webhook(storage, webhook_id)
    data: Any = without_read_only(await json_body(request))
    change = validated(WebhookUpdate, data, whole="webhook")
    if change.id is not None and change.id != webhook_id:
        raise ApiError(422, Problem("id", f"id: {change.id!r} is not the id of the webhook updated ({webhook_id!r})"))
    fields = change.model_dump(exclude_none=True, exclude={"id"})
    updated = await storage.put(webhook.model_copy(update=fields))  # stamps updatedAt
    return One[WebhookView](data=[WebhookView.of(updated)])


@router.delete("/{webhookId}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: WebhookId, storage: HubStorage) -> Response:
    if not await storage.delete(Webhook, webhook_id):
        raise not_found("webhook", webhook_id)
    return Response(status_code=204)


async def _webhook(storage: HubStorage, webhook_id: str) -> Webhook:
    webhook = await storage.get(Webhook, webhook_id)
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return webhook
