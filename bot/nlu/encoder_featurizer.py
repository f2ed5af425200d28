"""`EncoderFeaturizer`: dense sentence features for Rasa from the project's own sentence encoder.

The vectors are the intake service's (the same sentence-transformers folder, ONNX int8 graph and `query: `
prefix from intake.yml's `encoder` section), read at a lower token cap (see `bot.nlu.vectors`). They sit
beside the sparse word and character n-grams as one more sentence-level feature for DIET: the n-grams
know this assistant's words, the encoder knows paraphrases it was never shown ("就这样吧，帮我交上去").

Only sentence-level features: the encoder's tokens (XLM-R pieces) are not jieba's, and DIET's intent
head reads the sentence feature; sequence features for entities stay with the n-grams.

Training stores the encoder's variant name with the model; loading a model under another variant (another
folder, token cap, int8 switch or runtime) fails loudly instead of classifying foreign vectors. The train
cache key (`bot.commands.train`) and Rasa's own training cache (`fingerprint_addon`) include the encoder's
variant, weights digest and the feature code, so stale features or models are never reused.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import InvalidConfigException, RasaException
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.vectors import CachedVectors, feature_fingerprint, shared_encoder

log = logging.getLogger(__name__)

META_FILE = "encoder.json"


class EncoderMismatch(RasaException):
    """The model was trained on vectors of another encoder variant than this process would produce."""


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class EncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds one L2-normalised sentence vector per message text (float32, the encoder's dim)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # Tokens read per message (prefix and specials included); see bot.nlu.vectors for why.
            "max_seq_length": 64,
            # Encoder threads in the Rasa process: the 2 cores are shared with two other processes.
            "threads": 1,
            # Vectors of this many distinct texts kept in memory (384 floats each, ~1.5 KB).
            "cache_size": 4096,
        }

    @staticmethod
    def required_packages() -> list[str]:
        return ["onnxruntime", "transformers"]

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Rasa caches each component's training output by its config and inputs; the encoder is outside
        the graph, so its variant, weights and the feature code join the fingerprint (another encoder
        must not restore cached features)."""
        return feature_fingerprint()

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        for key in ("max_seq_length", "threads"):
            if int(config.get(key, 0)) < 1:
                raise InvalidConfigException(f"EncoderFeaturizer: {key} must be a positive integer")

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext, trained_with: str | None = None) -> None:
        super().__init__(execution_context.node_name, config)
        self._model_storage = model_storage
        self._resource = resource
        self.trained_with = trained_with
        self._vectors: CachedVectors | None = None

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> EncoderFeaturizer:
        return cls(config, model_storage, resource, execution_context)

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> EncoderFeaturizer:
        """Reads the variant the model was trained with and loads the encoder now, so the first
        resident's message does not wait for it and a mismatch stops the server at start."""
        trained_with = None
        try:
            with model_storage.read_from(resource) as directory:
                trained_with = json.loads((directory / META_FILE).read_text(encoding="utf-8"))["encoder"]
        except (ValueError, KeyError, OSError) as exc:
            log.warning("EncoderFeaturizer: no encoder record in the model (%s)", exc)
        component = cls(config, model_storage, resource, execution_context, trained_with)
        component.vectors()
        return component

    def vectors(self) -> CachedVectors:
        """The process's shared encoder (built on first use) behind this component's text cache."""
        if self._vectors is None:
            encoder = shared_encoder(self._config["max_seq_length"], self._config["threads"])
            if self.trained_with is not None and encoder.name != self.trained_with:
                raise EncoderMismatch(
                    f"this NLU model was trained with encoder {self.trained_with!r}, but this process "
                    f"encodes with {encoder.name!r}: retrain (shangliang train)")
            self._vectors = CachedVectors(encoder, self._config["cache_size"])
        return self._vectors

    def train(self, training_data: TrainingData) -> Resource:
        """Nothing is fitted: the record of which encoder made the training vectors is the state."""
        name = self.vectors().encoder.name
        with self._model_storage.write_to(self._resource) as directory:
            (directory / META_FILE).write_text(json.dumps({"encoder": name, "dim": self.vectors().encoder.dim}),
                                               encoding="utf-8")
        self.trained_with = name
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds the sentence feature to every message with text."""
        with_text = [m for m in messages if m.get(TEXT)]
        if with_text:
            vectors = self.vectors().encode([m.get(TEXT) for m in with_text])
            for message, vector in zip(with_text, vectors, strict=True):
                message.add_features(Features(np.expand_dims(vector, 0), FEATURE_TYPE_SENTENCE, TEXT,
                                              self._identifier))
        return messages
