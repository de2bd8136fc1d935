from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "tests.django.project"
    label = "rs_test_project"
    default_auto_field = "django.db.models.BigAutoField"
