"""The Shapes world: synthetic scenes with known WordNet truth and a toy CLIP trained on them.

Scenes hold plane figures and handwritten digits, each a WordNet noun synset, with boxes and masks;
any scene is regenerated from its integer id. ``datasets`` writes CUB- and ImageNet-style sets,
``train`` trains the bundled ``shapes-world`` open_clip model, ``evaluate`` writes the report.
"""

from .scenes import (
    ALL_CONCEPTS,
    BACKGROUND_SYNSET,
    DIGIT_CONCEPTS,
    SHAPE_CONCEPTS,
    TEST_ID_START,
    Scene,
    SceneObject,
    render_scene,
)

__all__ = [
    "ALL_CONCEPTS",
    "BACKGROUND_SYNSET",
    "DIGIT_CONCEPTS",
    "SHAPE_CONCEPTS",
    "TEST_ID_START",
    "Scene",
    "SceneObject",
    "render_scene",
]
