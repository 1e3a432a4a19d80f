"""The chat's one model: every message, kept in the database."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class Message(models.Model):
    text = models.CharField(max_length=1000)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]

    def __str__(self) -> str:
        return self.text
