"""Post-processing operators, registered under PaddleOCR's class names (ppocr/postprocess/).
Every module in this package registers its operators on import; one module per family.

Calling conventions (PaddleOCR's, with the model outputs as a list of arrays in the order the
inference program returns them):
  det:  op(preds, shape_list) -> [{'points': N×K×2 array, 'scores': [...]}] per image
  rec:  op(preds) -> [(text, score)] per image
  cls:  op(preds) -> [(label, score)] per image
"""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
