"""The ORM grants store's table: one row per approved agent session (org, subject, session id)."""

from __future__ import annotations

from django.db import models

from ..capability import MAX_SESSION_ID
from ..grant_rules import MAX_NAME


class AgentGrant(models.Model):
    """Scopes a person approved for one agent session until ``expires_at`` (Unix seconds). The
    scopes are an RFC 6749 §3.3 scope string, tokens sorted. Written through
    :class:`~resource_server.django.grants.DjangoGrantStore` only."""

    # Typed as django-stubs asks without its mypy plugin: [the type a field takes, the type it gives].
    org: models.CharField[str, str] = models.CharField(max_length=MAX_NAME)
    subject: models.CharField[str, str] = models.CharField(max_length=MAX_NAME)
    session_id: models.CharField[str, str] = models.CharField(max_length=MAX_SESSION_ID)
    scopes: models.TextField[str, str] = models.TextField()
    created_at: models.FloatField[float, float] = models.FloatField()
    expires_at: models.FloatField[float, float] = models.FloatField(db_index=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("org", "subject", "session_id"), name="resource_server_grant_key"
            ),
        )

    def __str__(self) -> str:
        return f"{self.org}/{self.subject}/{self.session_id}: {self.scopes}"
