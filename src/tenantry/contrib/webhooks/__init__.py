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
them with :func:`verify` or any Standard Webhooks library. Secrets are ``whsec_`` + base64
(:func:`new_secret`), stored sealed and shown redacted; :func:`rotate_secret` replaces one
while the old one keeps signing for a while. See docs/plugins.md.
"""

from tenantry.contrib.webhooks.config import WebhooksConfig, subscribed
from tenantry.contrib.webhooks.delivery import DeliveryReport, WebhookWorker, deliver_pending
from tenantry.contrib.webhooks.models import Delivery
from tenantry.contrib.webhooks.outbox import aqueue, build, queue
from tenantry.contrib.webhooks.plugin import WebhooksPlugin
from tenantry.contrib.webhooks.rotation import rotate_secret
from tenantry.contrib.webhooks.signing import check_secret, new_secret, sign, signature_headers, verify

__all__ = [
    "Delivery",
    "DeliveryReport",
    "WebhookWorker",
    "WebhooksConfig",
    "WebhooksPlugin",
    "aqueue",
    "build",
    "check_secret",
    "deliver_pending",
    "new_secret",
    "queue",
    "rotate_secret",
    "sign",
    "signature_headers",
    "subscribed",
    "verify",
]
