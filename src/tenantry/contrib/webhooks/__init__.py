"""The webhooks plugin: a tenant's events, signed and POSTed to the endpoint it configures.

::

    from tenantry.contrib.webhooks import WebhooksPlugin, aqueue, WebhookWorker

    tn = Tenantry(settings, metadata=Base.metadata, plugins=[WebhooksPlugin()])
    tn.plugins.enable("webhooks", plan="enterprise")
    # in a request of a tenant it is on for, inside the app's transaction:
    await aqueue(tn, session, "task.created", {"id": task.id, "title": task.title})
    # and somewhere, something sending them:
    WebhookWorker(tn).start()

Deliveries follow the Standard Webhooks signature scheme (:mod:`.signing`); receivers check
them with :func:`verify`. See docs/plugins.md.
"""

from tenantry.contrib.webhooks.config import WebhooksConfig, subscribed
from tenantry.contrib.webhooks.delivery import DeliveryReport, WebhookWorker, deliver_pending
from tenantry.contrib.webhooks.models import Delivery
from tenantry.contrib.webhooks.outbox import aqueue, build, queue
from tenantry.contrib.webhooks.plugin import WebhooksPlugin
from tenantry.contrib.webhooks.signing import sign, signature_headers, verify

__all__ = [
    "Delivery",
    "DeliveryReport",
    "WebhookWorker",
    "WebhooksConfig",
    "WebhooksPlugin",
    "aqueue",
    "build",
    "deliver_pending",
    "queue",
    "sign",
    "signature_headers",
    "subscribed",
    "verify",
]
