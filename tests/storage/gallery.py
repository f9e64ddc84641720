"""Gallery: an app of artworks, each with an image in file storage (docs/apps.md, "5d. File
storage"). `turnstile serve --app tests.storage.gallery` serves it; the upload is Convex's flow
(`storage:generateUploadUrl`, then a POST of the file), the same for every app."""

from __future__ import annotations

import attrs

from domain import (
    Aggregate,
    App,
    Decision,
    Event,
    Identity,
    MutationSpec,
    QuerySpec,
    View,
    erase_file,
    file_url,
    require_cap,
    require_file,
    require_org,
)

MANAGE = "events:manage"


class GalleryEvent(Event):
    namespace = "gallery"


@attrs.frozen(kw_only=True)
class ArtworkHung(GalleryEvent):
    org_id: str
    title: str
    image_storage_id: str
    #: The image's size as it was recorded (from its file's record).
    image_size: int


@attrs.frozen(kw_only=True)
class ArtworkRemoved(GalleryEvent):
    pass


@attrs.frozen(kw_only=True)
class Artwork:
    org_id: str = ""
    title: str = ""
    image_storage_id: str | None = None
    image_size: int = 0
    removed: bool = False


def evolve(state: Artwork, event: Event) -> Artwork:
    if isinstance(event, ArtworkHung):
        return Artwork(
            org_id=event.org_id,
            title=event.title,
            image_storage_id=event.image_storage_id,
            image_size=event.image_size,
        )
    if isinstance(event, ArtworkRemoved):
        return attrs.evolve(state, removed=True, image_storage_id=None)
    raise TypeError(f"{type(event).__name__} is not an artwork event")


ARTWORK = Aggregate(
    kind="artwork", id_prefix="aw", state_type=Artwork, initial=Artwork(), evolve=evolve
)


@attrs.frozen(kw_only=True)
class HangArgs:
    title: str
    image_storage_id: str


@attrs.frozen(kw_only=True)
class ArtworkIdArgs:
    artwork_id: str


def hang(d: Decision[Artwork], args: HangArgs) -> str:
    """gallery:hang -> the artwork's id; `imageStorageId` must be a stored file of the caller's
    organization (InvalidArgs naming it otherwise), decided on in this command."""
    require_cap(d.identity, MANAGE)
    image = require_file(d, args.image_storage_id, path="imageStorageId")
    assert d.identity.org_id is not None
    d.emit(
        ArtworkHung,
        org_id=d.identity.org_id,
        title=args.title,
        image_storage_id=args.image_storage_id,
        image_size=image.size,
    )
    return d.aggregate_id


def remove(d: Decision[Artwork], args: ArtworkIdArgs) -> None:
    """gallery:remove: the artwork goes, and its image's bytes with it."""
    require_cap(d.identity, MANAGE)
    require_org(d.identity, d.state.org_id or None, "Artwork")
    if d.state.image_storage_id is not None:
        erase_file(d, d.state.image_storage_id)
    d.emit(ArtworkRemoved)


def get(view: View, args: ArtworkIdArgs, identity: Identity) -> dict[str, object] | None:
    state = view.aggregate(ARTWORK, args.artwork_id)
    if state is None or state.removed:
        return None
    return {
        "_id": args.artwork_id,
        "title": state.title,
        "imageSize": state.image_size,
        "imageUrl": file_url(view, state.image_storage_id),
    }


app = App(
    name="gallery",
    aggregates=(ARTWORK,),
    mutations=(
        MutationSpec(
            name="gallery:hang", args_type=HangArgs, aggregate=ARTWORK, route=None, handle=hang
        ),
        MutationSpec(
            name="gallery:remove",
            args_type=ArtworkIdArgs,
            aggregate=ARTWORK,
            route=lambda args: args.artwork_id,
            handle=remove,
        ),
    ),
    queries=(QuerySpec(name="gallery:get", args_type=ArtworkIdArgs, evaluate=get),),
)
