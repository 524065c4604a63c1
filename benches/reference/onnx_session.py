"""The ONNX Runtime session that `onnx_eval.py` times and `onnx_profile.py` profiles: a course
model (`torch_models.py`) exported with `torch.onnx.export` (opset 17, the TorchScript
exporter, eval mode, batch as a fixed dimension) and loaded by onnxruntime's CPU provider
with every graph optimisation and, when `threads` > 0, that many intra-op threads."""
import os

import torch


def exported_session(model, x, threads, folder, profile=False):
    """An `InferenceSession` of the eval-mode `model` exported for input `x` into `folder`
    (which must outlive the session when `profile`, as the profile is written there)."""
    import onnxruntime as ort  # here, so that the scripts' --help works without it

    path = os.path.join(folder, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamo=False)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
