from django.apps import AppConfig


class ChunksConfig(AppConfig):
    """Content-addressed chunk store, manifests and their API."""

    name = "chunks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from chunks.permissions import public_chunks
        from market.rebac.models import RelationTuple

        # A revoked grant must stop the public fast path at once: forget everything.
        post_delete.connect(
            lambda **_: public_chunks.clear(),
            sender=RelationTuple,
            weak=False,
            dispatch_uid="chunks-public-forget",
        )
