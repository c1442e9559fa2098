from django.apps import AppConfig


class ChunksConfig(AppConfig):
    """Content-addressed chunk store, manifests and their API."""

    name = "chunks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from chunks.permissions import readable_chunks_forget_after_commit
        from market.rebac.models import RelationTuple

        # A revoked grant must stop the fast path: forget what it granted once it commits.
        post_delete.connect(
            readable_chunks_forget_after_commit,
            sender=RelationTuple,
            weak=False,
            dispatch_uid="chunks-public-forget",
        )
