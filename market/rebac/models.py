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


class RelationTupleChange(models.Model):
    """One write or deletion of a relation tuple, numbered in commit order within its epoch.

    Rows are appended by database triggers on RelationTuple (migration 0007), in the
    transaction that changes the tuple, whatever wrote it (the ORM, bulk_create, raw SQL).
    Each process's tuple index replays them to stay in step with the table (live.py).
    """

    WRITE, DELETE = "w", "d"

    epoch = models.CharField(max_length=32)
    revision = models.BigIntegerField()
    op = models.CharField(max_length=1, choices=[(WRITE, "write"), (DELETE, "delete")])
    object_type = models.CharField(max_length=NAME_LENGTH)
    object_id = models.CharField(max_length=ID_LENGTH)
    relation = models.CharField(max_length=NAME_LENGTH)
    subject_type = models.CharField(max_length=NAME_LENGTH)
    subject_id = models.CharField(max_length=ID_LENGTH)
    subject_relation = models.CharField(max_length=NAME_LENGTH, blank=True, default="")

    class Meta:
        app_label = "market"
        ordering = ["epoch", "revision"]
        indexes = [models.Index(fields=["epoch", "revision"], name="rebac_change_by_revision")]

    def __str__(self) -> str:
        subject = f"{self.subject_type}:{self.subject_id}"
        if self.subject_relation:
            subject += f"#{self.subject_relation}"
        verb = "write" if self.op == self.WRITE else "delete"
        return (
            f"{self.revision}: {verb} {self.object_type}:{self.object_id}#{self.relation}@{subject}"
        )


class RelationTupleRevision(models.Model):
    """The one row counting tuple changes: the revision of the last one, and an epoch.

    The triggers take the next revision from here, so concurrent writers of tuples commit
    one after the other and revisions are dense and in commit order. The epoch is drawn
    when the row is created: a new epoch (the table emptied, a database restored) tells
    every process that its index belongs to another history and must be reloaded.
    """

    id = models.SmallIntegerField(primary_key=True)
    revision = models.BigIntegerField()
    epoch = models.CharField(max_length=32)

    class Meta:
        app_label = "market"

    def __str__(self) -> str:
        return f"revision {self.revision} (epoch {self.epoch})"
