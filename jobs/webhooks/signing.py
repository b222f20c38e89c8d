"""Standard Webhooks signature headers, made with the `standardwebhooks` library.

webhook-id is the delivery's id (the same on every attempt); webhook-timestamp is the
attempt's time; webhook-signature is "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one
per secret, space-separated, so a receiver mid-rotation verifies with either secret.
"""

from standardwebhooks import Webhook


def signature_headers(message_id, body, secrets, now):
    """Headers for one attempt. `body` is the exact text sent; `now` an aware datetime."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(message_id, now, body) for secret in secrets),
    }
