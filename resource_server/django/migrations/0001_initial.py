"""The ORM grants store's table (resource_server.django.models.AgentGrant)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[Any]] = []

    operations: ClassVar[list[Any]] = [
        migrations.CreateModel(
            name="AgentGrant",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("org", models.CharField(max_length=255)),
                ("subject", models.CharField(max_length=255)),
                ("session_id", models.CharField(max_length=128)),
                ("scopes", models.TextField()),
                ("created_at", models.FloatField()),
                ("expires_at", models.FloatField(db_index=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("org", "subject", "session_id"), name="resource_server_grant_key"
                    )
                ],
            },
        ),
    ]
