"""Relation tuples as rows: `object_type:object_id#relation@subject_type:subject_id[#subject_relation]`."""

from django.db import models

NAME_LENGTH = 64
ID_LENGTH = 128


class RelationTuple(models.Model):
    """One relation tuple; the rows together are the one source of truth for relations."""

    object_type = models.CharField(max_length=NAME_LENGTH)
    object_id = models.CharField(max_length=ID_LENGTH)
    relation = models.CharField(max_length=NAME_LENGTH)
    subject_type = models.CharField(max_length=NAME_LENGTH)
    subject_id = models.CharField(
        max_length=ID_LENGTH, help_text="'*' for every subject of the type."
    )
    subject_relation = models.CharField(
        max_length=NAME_LENGTH, blank=True, default="", help_text="Set for a userset subject."
    )

    class Meta:
        app_label = "market"
        ordering = ["object_type", "object_id", "relation"]
        constraints = [
            # Also the index for "who holds object#relation?".
            models.UniqueConstraint(
                fields=[
                    "object_type",
                    "object_id",
                    "relation",
                    "subject_type",
                    "subject_id",
                    "subject_relation",
                ],
                name="rebac_tuple_unique",
            ),
        ]
        indexes = [
            # "Which objects does this subject hold a relation on?", covering the object id.
            models.Index(
                fields=[
                    "subject_type",
                    "subject_id",
                    "subject_relation",
                    "object_type",
                    "relation",
                    "object_id",
                ],
                name="rebac_tuple_by_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.object}#{self.relation}@{self.subject}"

    @property
    def object(self) -> str:
        return f"{self.object_type}:{self.object_id}"

    @property
    def subject(self) -> str:
        base = f"{self.subject_type}:{self.subject_id}"
        return f"{base}#{self.subject_relation}" if self.subject_relation else base
