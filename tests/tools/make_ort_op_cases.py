#!/usr/bin/env python3
"""Writes one-node ONNX graphs for every op vitcc-pack's interpreter implements, with their inputs,
for test_onnx_ops_vs_ort: ONNX Runtime runs each graph (ort_op_runner.js) and vitcc's evaluator the
same node (detail::eval_op, what constant folding and OnnxGraph::run use), and the outputs must agree.

Usage: make_ort_op_cases.py OUT_DIR

OUT_DIR/cases.json lists the cases; OUT_DIR/<case>/model.onnx is the graph, in_<k>.pb its k-th
input as a TensorProto (read by vitcc's own tensor loader) and in_<k>.bin the same data raw, little
endian (read by Node). Every case has one of these expectations:
  match   ORT and vitcc compute the same outputs (floats within rtol/atol, everything else exactly);
  refuse  vitcc refuses with a PackError containing `words`. ORT is run too unless ort=False: cases
          where ORT's own result is undefined behaviour (int64 overflow wraps, INT64_MIN / -1 kills
          the process with SIGFPE, a float cast out of an integer's range) are not given to it;
  both_refuse  the graph is invalid: ORT fails and vitcc refuses;
  expect  vitcc's outputs equal `expect` (computed here from the ONNX spec with numpy), for edge
          cases ORT cannot be trusted with (see refuse).
Edge cases: negative axes, broadcasting, empty tensors, int64 limits, and each op at the opsets where
its signature changed (attributes that became inputs, new defaults), 7 to 18. Deterministic; cached
by a stamp of this file.
"""
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

I64_MIN, I64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max
I32_MIN, I32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max
rng = np.random.default_rng(2024)
CASES = []


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def i64(values):
    return np.array(values, dtype=np.int64)


def i32(values):
    return np.array(values, dtype=np.int32)


def case(name, op, inputs, attrs=None, opset=13, outputs=1, expect='match', words=(), ort=True, rtol=1e-5,
         atol=1e-6, values=None):
    """inputs: list of numpy arrays, or None for an omitted optional input. outputs: how many."""
    CASES.append(dict(name=name, op=op, inputs=inputs, attrs=attrs or {}, opset=opset, outputs=outputs,
                      expect=expect, words=list(words), ort=ort, rtol=rtol, atol=atol, values=values))


# ------------------------------------------------------------------------------------ elementwise
for op, fn in (('Add', np.add), ('Sub', np.subtract), ('Mul', np.multiply), ('Div', np.divide)):
    case(f'{op}_f32_same_shape', op, [f32(2, 3), f32(2, 3, lo=0.5)])
    case(f'{op}_f32_broadcast_trailing', op, [f32(2, 3, 4), f32(4, lo=0.5)])
    case(f'{op}_f32_broadcast_both', op, [f32(2, 1, 4), f32(3, 1, lo=0.5)])
    case(f'{op}_f32_scalar', op, [np.array(1.5, np.float32), f32(2, 3, lo=0.5)])
    case(f'{op}_f32_empty', op, [f32(0, 3), f32(3, lo=0.5)])
    case(f'{op}_f32_opset7', op, [f32(2, 3), f32(3, lo=0.5)], opset=7)
    case(f'{op}_i64_broadcast', op, [i64([[7, -7, 12], [-12, 5, 0]]), i64([2, -3, 5])])
    case(f'{op}_i32', op, [i32([[9, -9], [100, -100]]), i32([[4, 4], [-7, 7]])])
    case(f'{op}_i64_empty', op, [np.zeros((2, 0), np.int64), i64([3])])
case('Add_i64_near_max', 'Add', [i64([I64_MAX - 1, I64_MIN + 1, I64_MAX]), i64([1, -1, I64_MIN])])
case('Sub_i64_near_min', 'Sub', [i64([I64_MIN + 1, I64_MAX, -1]), i64([1, I64_MAX, I64_MAX])])
case('Mul_i64_2pow62', 'Mul', [i64([1 << 31, -(1 << 31), I64_MAX]), i64([1 << 31, 1 << 31, -1])])
case('Div_i64_limits', 'Div', [i64([I64_MIN, I64_MAX, I64_MIN, -7]), i64([1, -1, I64_MAX, I64_MIN])])
case('Div_i64_truncates_toward_zero', 'Div', [i64([-7, 7, -7, 7, -1]), i64([2, -2, -2, 2, 3])])
case('Div_f32_by_zero', 'Div', [np.array([1, -1, 0], np.float32), np.zeros(3, np.float32)])
# int64 overflow: ORT 1.30 wraps around (undefined behaviour in C++), INT64_MIN / -1 kills its
# process with SIGFPE; vitcc refuses each, naming the node.
case('Add_i64_overflow', 'Add', [i64([1, I64_MAX]), i64([2, 1])], expect='refuse', ort=False,
     words=['9223372036854775807 + 1', 'overflows int64'])
case('Sub_i64_overflow', 'Sub', [i64([I64_MIN]), i64([1])], expect='refuse', ort=False,
     words=['-9223372036854775808 - 1', 'overflows int64'])
case('Mul_i64_overflow', 'Mul', [i64([1 << 32]), i64([1 << 32])], expect='refuse', ort=False,
     words=['4294967296 * 4294967296', 'overflows int64'])
case('Div_i64_min_by_minus_one', 'Div', [i64([I64_MIN]), i64([-1])], expect='refuse', ort=False,
     words=['-9223372036854775808 / -1', 'overflows int64'])
case('Div_i64_by_zero', 'Div', [i64([4]), i64([0])], expect='both_refuse', words=['division by zero'])
case('Add_i32_overflow', 'Add', [i32([I32_MAX]), i32([1])], expect='refuse', ort=False,
     words=['2147483647 + 1', 'overflows int32'])
case('Div_i32_min_by_minus_one', 'Div', [i32([I32_MIN]), i32([-1])], expect='refuse', ort=False,
     words=['-2147483648 / -1', 'overflows int32'])
case('Neg_i64_min', 'Neg', [i64([0, I64_MIN])], expect='refuse', ort=False,
     words=['-(-9223372036854775808)', 'overflows int64'])
case('Neg_i32_min', 'Neg', [i32([I32_MIN])], expect='refuse', ort=False, words=['overflows int32'])

case('Pow_f32', 'Pow', [f32(2, 3, lo=0.1), f32(2, 3)])
case('Pow_square', 'Pow', [f32(2, 3), np.array(2.0, np.float32)])
case('Pow_broadcast', 'Pow', [f32(2, 3, lo=0.1), f32(3)])
case('Pow_negative_base_fraction', 'Pow', [np.array([-2, -0.5, 0, 4], np.float32), np.array(0.5, np.float32)])
case('Pow_int_exponent_opset12', 'Pow', [f32(2, 3), i64([2, 3, -1])], opset=12)
case('Pow_opset7', 'Pow', [f32(4, lo=0.1), f32(4)], opset=7)

case('Equal_f32_broadcast', 'Equal', [np.array([[1, 2], [3, 4]], np.float32), np.array([1, 4], np.float32)], opset=11)
case('Equal_i64', 'Equal', [i64([I64_MIN, 0, I64_MAX]), i64([I64_MIN, 1, I64_MAX])])
case('Equal_bool', 'Equal', [np.array([True, False, True]), np.array([True, True, False])])
case('Equal_i32_empty', 'Equal', [np.zeros((0,), np.int32), np.zeros((1,), np.int32)])
case('Equal_opset7_i64', 'Equal', [i64([1, 2]), i64([1, 3])], opset=7)

for op in ('Sqrt', 'Erf', 'Exp', 'Tanh', 'Sigmoid', 'Reciprocal', 'Neg', 'Relu'):
    x = np.array([-100, -3, -1, -0.5, 0, 0.25, 1, 3, 20, 100], np.float32)
    case(f'{op}_f32', op, [x], rtol=2e-6 if op != 'Erf' else 1e-5)
    case(f'{op}_f32_rank3', op, [f32(2, 3, 4)])
    case(f'{op}_empty', op, [f32(0, 4)])
case('Sqrt_negative_nan', 'Sqrt', [np.array([-1, -0.0, 4], np.float32)])
case('Reciprocal_zero', 'Reciprocal', [np.array([0, -0.0, 2], np.float32)])
case('Exp_overflow_inf', 'Exp', [np.array([88, 89, 1000, -1000], np.float32)])
case('Neg_i64', 'Neg', [i64([3, -3, I64_MAX, I64_MIN + 1])])
case('Neg_i32', 'Neg', [i32([3, -3, I32_MAX])])
case('Relu_i32_opset14', 'Relu', [i32([-5, 0, 5])], opset=14)
case('Relu_i64_opset14', 'Relu', [i64([I64_MIN, 0, I64_MAX])], opset=14, ort=False, expect='expect',
     values=[i64([0, 0, I64_MAX])])  # ONNX allows int64 since opset 14; ORT 1.30 has no kernel for it

case('Where_broadcast', 'Where', [np.array([[True], [False]]), f32(1, 3), np.array(-1, np.float32)])
case('Where_i64', 'Where', [np.array([True, False, True]), i64([1, 2, 3]), i64([I64_MIN, I64_MAX, 0])])
case('Where_empty', 'Where', [np.zeros((0, 2), bool), f32(1, 2), f32(0, 1)])
case('Where_opset9', 'Where', [np.array([True, False]), f32(2), f32(2)], opset=9)

# ------------------------------------------------------------------------------------ linear algebra
case('MatMul_2d', 'MatMul', [f32(2, 3), f32(3, 4)])
case('MatMul_batched', 'MatMul', [f32(2, 2, 3), f32(3, 4)])
case('MatMul_broadcast_batch', 'MatMul', [f32(2, 1, 2, 3), f32(3, 3, 2)])
case('MatMul_vec_mat', 'MatMul', [f32(3), f32(3, 4)])
case('MatMul_mat_vec', 'MatMul', [f32(2, 3), f32(3)])
case('MatMul_vec_vec', 'MatMul', [f32(3), f32(3)])
case('MatMul_empty_k', 'MatMul', [f32(2, 0), f32(0, 3)])
case('MatMul_empty_batch', 'MatMul', [f32(0, 2, 3), f32(3, 2)])
case('MatMul_opset7', 'MatMul', [f32(2, 3), f32(3, 2)], opset=7)
case('MatMul_mismatch', 'MatMul', [f32(2, 3), f32(4, 2)], expect='both_refuse', words=['inner dimensions differ'])

case('Gemm_plain', 'Gemm', [f32(2, 3), f32(3, 4), f32(4)])
case('Gemm_transA_transB', 'Gemm', [f32(3, 2), f32(4, 3), f32(2, 4)], attrs=dict(transA=1, transB=1))
case('Gemm_alpha_beta', 'Gemm', [f32(2, 3), f32(3, 4), f32(2, 1)], attrs=dict(alpha=0.5, beta=-2.0))
case('Gemm_c_scalar', 'Gemm', [f32(2, 3), f32(4, 3), f32(1)], attrs=dict(transB=1))
case('Gemm_no_c_opset11', 'Gemm', [f32(2, 3), f32(3, 4)], opset=11)
case('Gemm_beta_zero', 'Gemm', [f32(2, 3), f32(3, 4), f32(4)], attrs=dict(beta=0.0))
case('Gemm_opset7', 'Gemm', [f32(2, 3), f32(3, 4), f32(2, 4)], opset=7)
case('Gemm_c_bad', 'Gemm', [f32(2, 3), f32(3, 4), f32(3)], expect='both_refuse', words=['does not broadcast'])

case('Conv_basic', 'Conv', [f32(1, 3, 6, 7), f32(4, 3, 3, 3), f32(4)], rtol=1e-5, atol=1e-5)
case('Conv_strides_pads_dilations', 'Conv', [f32(2, 2, 9, 8), f32(3, 2, 3, 2)],
     attrs=dict(strides=[2, 3], pads=[1, 0, 2, 1], dilations=[2, 1]), atol=1e-5)
case('Conv_groups', 'Conv', [f32(1, 4, 5, 5), f32(6, 2, 3, 3), f32(6)], attrs=dict(group=2, pads=[1, 1, 1, 1]), atol=1e-5)
case('Conv_depthwise', 'Conv', [f32(1, 3, 5, 5), f32(3, 1, 3, 3)], attrs=dict(group=3, kernel_shape=[3, 3]), atol=1e-5)
case('Conv_same_upper', 'Conv', [f32(1, 2, 5, 6), f32(2, 2, 2, 3)], attrs=dict(auto_pad='SAME_UPPER', strides=[2, 2]), atol=1e-5)
case('Conv_same_lower', 'Conv', [f32(1, 2, 5, 6), f32(2, 2, 2, 3)], attrs=dict(auto_pad='SAME_LOWER', strides=[2, 2]), atol=1e-5)
case('Conv_valid', 'Conv', [f32(1, 2, 5, 6), f32(2, 2, 3, 3)], attrs=dict(auto_pad='VALID'), atol=1e-5)
case('Conv_patchify_opset10', 'Conv', [f32(1, 3, 8, 8), f32(5, 3, 4, 4), f32(5)], attrs=dict(strides=[4, 4]),
     opset=10, atol=1e-5)
xc, wc = f32(1, 1, 4, 4), f32(1, 1, 2, 2)
case('Conv_huge_stride', 'Conv', [xc, wc], attrs=dict(strides=[I64_MAX, 1]), atol=1e-5)  # one output row
case('Conv_huge_pads', 'Conv', [f32(1, 1, 4, 4), f32(1, 1, 2, 2)], attrs=dict(pads=[I64_MAX, 0, 1, 0]),
     expect='both_refuse', words=['overflows'])
case('Conv_negative_pads', 'Conv', [f32(1, 1, 4, 4), f32(1, 1, 2, 2)], attrs=dict(pads=[-1, 0, 0, 0]),
     expect='both_refuse', words=['pads must be >= 0'])

case('BatchNormalization_opset9', 'BatchNormalization',
     [f32(2, 3, 4, 5), f32(3), f32(3), f32(3), f32(3, lo=0.1, hi=2)], opset=9)
case('BatchNormalization_opset15', 'BatchNormalization',
     [f32(1, 3, 4, 4), f32(3), f32(3), f32(3), f32(3, lo=0.1, hi=2)], attrs=dict(epsilon=1e-3), opset=15)
case('BatchNormalization_rank2', 'BatchNormalization', [f32(4, 3), f32(3), f32(3), f32(3), f32(3, lo=0.1, hi=2)])
case('BatchNormalization_rank3', 'BatchNormalization', [f32(2, 3, 5), f32(3), f32(3), f32(3), f32(3, lo=0.1, hi=2)])
case('BatchNormalization_empty_batch', 'BatchNormalization',
     [f32(0, 3, 2, 2), f32(3), f32(3), f32(3), f32(3, lo=0.1, hi=2)])
case('BatchNormalization_no_channels', 'BatchNormalization', [f32(2, 0, 2), f32(0), f32(0), f32(0), f32(0)])

case('GlobalAveragePool_2d', 'GlobalAveragePool', [f32(2, 3, 4, 5)])
case('GlobalAveragePool_1d', 'GlobalAveragePool', [f32(1, 2, 7)])
case('GlobalAveragePool_3d', 'GlobalAveragePool', [f32(1, 2, 2, 3, 2)])

case('Pad_opset10_attrs', 'Pad', [f32(1, 2, 3, 3)], attrs=dict(pads=[0, 0, 1, 2, 0, 0, 2, 1], value=1.5), opset=10)
case('Pad_opset11_inputs', 'Pad', [f32(2, 3), i64([1, 0, 0, 2]), np.array(-1, np.float32)], opset=11)
case('Pad_opset13_no_value', 'Pad', [f32(2, 3), i64([0, 1, 1, 0])])
case('Pad_opset18', 'Pad', [f32(2, 3), i64([1, 1, 1, 1]), np.array(2, np.float32)], opset=18)
case('Pad_i64', 'Pad', [i64([[1, 2], [3, 4]]), i64([0, 1, 0, 1]), i64(I64_MAX)])
case('Pad_empty_input', 'Pad', [f32(0, 2), i64([1, 0, 1, 0])])
case('Pad_zero', 'Pad', [f32(2, 2), i64([0, 0, 0, 0])])
case('Pad_negative_crops', 'Pad', [f32(3, 4), i64([-1, 0, 0, -2])], expect='refuse',
     words=['negative pads'])  # valid since opset 11 (ORT crops); vitcc does not support cropping
case('Pad_overflow', 'Pad', [f32(2, 2), i64([I64_MAX, 0, 1, 0])], expect='both_refuse', words=['overflows'])

# ------------------------------------------------------------------------------- normalisation, reductions
case('Softmax_opset11_default_axis', 'Softmax', [f32(2, 3, 4)], opset=11)  # coerced to 2-D at axis 1
case('Softmax_opset11_axis2', 'Softmax', [f32(2, 3, 4)], attrs=dict(axis=2), opset=11)
case('Softmax_opset11_axis0', 'Softmax', [f32(2, 3)], attrs=dict(axis=0), opset=11)
case('Softmax_opset13_default_axis', 'Softmax', [f32(2, 3, 4)])
case('Softmax_opset13_axis1', 'Softmax', [f32(2, 3, 4)], attrs=dict(axis=1))
case('Softmax_opset13_negative_axis', 'Softmax', [f32(2, 3, 4)], attrs=dict(axis=-2))
case('Softmax_large_values', 'Softmax', [np.array([[1000, 1001, 999], [-1e30, 0, 1e30]], np.float32)])
case('Softmax_minus_inf', 'Softmax', [np.array([[-np.inf, 0, 1]], np.float32)])
case('Softmax_axis_out_of_range', 'Softmax', [f32(2, 3)], attrs=dict(axis=2), expect='both_refuse',
     words=['out of range'])

case('ReduceMean_axes_attr', 'ReduceMean', [f32(2, 3, 4)], attrs=dict(axes=[1]))
case('ReduceMean_negative_axes', 'ReduceMean', [f32(2, 3, 4)], attrs=dict(axes=[-1, 0]))
case('ReduceMean_keepdims0', 'ReduceMean', [f32(2, 3, 4)], attrs=dict(axes=[2], keepdims=0))
case('ReduceMean_all', 'ReduceMean', [f32(2, 3, 4)])
case('ReduceMean_all_keepdims0', 'ReduceMean', [f32(2, 3)], attrs=dict(keepdims=0))
case('ReduceMean_opset11', 'ReduceMean', [f32(3, 4)], attrs=dict(axes=[-1]), opset=11)
case('ReduceMean_opset18_axes_input', 'ReduceMean', [f32(2, 3, 4), i64([1, -1])], opset=18)
case('ReduceMean_opset18_no_axes', 'ReduceMean', [f32(2, 3)], opset=18)
case('ReduceMean_opset18_noop', 'ReduceMean', [f32(2, 3)], attrs=dict(noop_with_empty_axes=1), opset=18)
case('ReduceMean_opset18_empty_axes_noop', 'ReduceMean', [f32(2, 3), np.zeros(0, np.int64)],
     attrs=dict(noop_with_empty_axes=1), opset=18)
case('ReduceMean_rank0', 'ReduceMean', [np.array(3.5, np.float32)])

case('LayerNormalization_last_axis', 'LayerNormalization', [f32(2, 3, 8), f32(8), f32(8)], opset=17)
case('LayerNormalization_axis1', 'LayerNormalization', [f32(2, 3, 4), f32(3, 4), f32(3, 4)],
     attrs=dict(axis=1, epsilon=1e-3), opset=17)
case('LayerNormalization_negative_axis', 'LayerNormalization', [f32(2, 3, 4), f32(3, 4)], attrs=dict(axis=-2),
     opset=17)
case('LayerNormalization_stats', 'LayerNormalization', [f32(2, 5), f32(5), f32(5)], opset=17, outputs=3)
case('LayerNormalization_no_bias', 'LayerNormalization', [f32(3, 6), f32(6)], opset=17)

# ------------------------------------------------------------------------------------ shape / layout
case('Reshape_infer_and_copy', 'Reshape', [f32(2, 3, 4), i64([0, -1])])
case('Reshape_opset7', 'Reshape', [f32(2, 6), i64([3, 2, 2])], opset=7)
case('Reshape_allowzero_opset14', 'Reshape', [f32(0, 3), i64([3, 0])], attrs=dict(allowzero=1), opset=14)
case('Reshape_empty_copy_zero', 'Reshape', [f32(0, 3), i64([0, 3, 1])], opset=14)
case('Reshape_i64', 'Reshape', [i64([1, 2, 3, 4, 5, 6]), i64([2, -1])])
case('Reshape_to_scalar', 'Reshape', [f32(1, 1), np.zeros(0, np.int64)])
case('Reshape_bad_count', 'Reshape', [f32(2, 3), i64([4, -1])], expect='both_refuse', words=['cannot reshape'])

for ax in (0, 1, 2, 3, -1, -3):
    case(f'Flatten_axis{ax}'.replace('-', 'm'), 'Flatten', [f32(2, 3, 2, 2)], attrs=dict(axis=ax), opset=13)
case('Flatten_opset9_default', 'Flatten', [f32(2, 3, 2)], opset=9)

case('Squeeze_opset11_axes', 'Squeeze', [f32(1, 3, 1, 2)], attrs=dict(axes=[0, -2]), opset=11)
case('Squeeze_opset11_all', 'Squeeze', [f32(1, 3, 1, 2)], opset=11)
case('Squeeze_opset13_axes_input', 'Squeeze', [f32(1, 3, 1, 2), i64([-4])])
case('Squeeze_opset13_all', 'Squeeze', [f32(1, 3, 1, 2)])
case('Squeeze_not_one', 'Squeeze', [f32(2, 3)], attrs=dict(axes=[0]), opset=11, expect='both_refuse',
     words=['cannot squeeze'])
case('Unsqueeze_opset11_axes', 'Unsqueeze', [f32(3, 2)], attrs=dict(axes=[0, -1]), opset=11)
case('Unsqueeze_opset13_unsorted', 'Unsqueeze', [f32(3, 2), i64([3, 0])])
case('Unsqueeze_scalar', 'Unsqueeze', [np.array(2.0, np.float32), i64([0])])
case('Unsqueeze_i64_empty', 'Unsqueeze', [np.zeros((0,), np.int64), i64([1])])

case('Transpose_default', 'Transpose', [f32(2, 3, 4)])
case('Transpose_perm', 'Transpose', [f32(2, 3, 4, 5)], attrs=dict(perm=[0, 2, 3, 1]))
case('Transpose_i64', 'Transpose', [i64([[1, 2, 3], [4, 5, 6]])], attrs=dict(perm=[1, 0]))
case('Transpose_empty', 'Transpose', [f32(0, 3)], attrs=dict(perm=[1, 0]))
case('Transpose_rank1', 'Transpose', [f32(4)])

case('Gather_axis0', 'Gather', [f32(5, 3), i64([0, 4, 2])])
case('Gather_axis1_negative_indices', 'Gather', [f32(2, 5), i64([-1, 0, -5])], attrs=dict(axis=1), opset=11)
case('Gather_negative_axis', 'Gather', [f32(2, 3, 4), i64([[1, 0], [3, 3]])], attrs=dict(axis=-1))
case('Gather_scalar_index', 'Gather', [f32(3, 4), np.array(2, np.int64)])
case('Gather_int32_indices', 'Gather', [i64([10, 20, 30]), i32([2, 0])])
case('Gather_shape_value', 'Gather', [i64([1, 3, 224, 224]), np.array(0, np.int64)])
case('Gather_empty_indices', 'Gather', [f32(3, 2), np.zeros((0,), np.int64)])
case('Gather_out_of_range', 'Gather', [f32(3, 2), i64([3])], expect='both_refuse', words=['index out of range'])

case('Slice_opset9_attrs', 'Slice', [f32(4, 5)], attrs=dict(starts=[1, 0], ends=[3, 10], axes=[0, 1]), opset=9)
case('Slice_opset9_no_axes', 'Slice', [f32(4, 5)], attrs=dict(starts=[-3], ends=[-1]), opset=9)
case('Slice_opset10_inputs', 'Slice', [f32(4, 5), i64([1]), i64([-1]), i64([1])], opset=10)
case('Slice_steps', 'Slice', [f32(6, 7), i64([0, 1]), i64([6, 7]), i64([0, 1]), i64([2, 3])])
case('Slice_negative_step', 'Slice', [f32(6, 7), i64([-1, 5]), i64([I64_MIN, 0]), i64([0, -1]), i64([-2, -2])])
case('Slice_end_max', 'Slice', [f32(4, 5), i64([2]), i64([I64_MAX]), i64([-1])])
case('Slice_start_min', 'Slice', [f32(4, 5), i64([I64_MIN]), i64([2]), i64([0])])
case('Slice_step_larger_than_dim', 'Slice', [f32(4, 5), i64([1]), i64([5]), i64([1]), i64([100])])
case('Slice_empty_result', 'Slice', [f32(4, 5), i64([3]), i64([1]), i64([0])])
case('Slice_empty_input_negative_step', 'Slice', [f32(0, 5), i64([-1]), i64([I64_MIN]), i64([0]), i64([-1])])
case('Slice_i64_shape_tail', 'Slice', [i64([1, 197, 384]), i64([1]), i64([I64_MAX]), i64([0])])
case('Slice_int32_params', 'Slice', [f32(4, 5), i32([1]), i32([3]), i32([1]), i32([1])])
# Steps whose size overflowed vitcc's stride arithmetic (INT64_MIN's magnitude, step * stride).
case('Slice_step_max', 'Slice', [f32(6, 5), i64([1]), i64([I64_MAX]), i64([0]), i64([I64_MAX])])
case('Slice_step_min', 'Slice', [f32(6, 5), i64([-1]), i64([I64_MIN]), i64([0]), i64([I64_MIN])])
case('Slice_step_huge_negative', 'Slice', [f32(6, 5), i64([4]), i64([-7]), i64([1]), i64([-(1 << 62)])])
case('Slice_step_zero', 'Slice', [f32(6, 5), i64([0]), i64([2]), i64([0]), i64([0])], expect='both_refuse', words=['step 0'])

case('Split_opset11_attr', 'Split', [f32(5, 4)], attrs=dict(axis=0, split=[2, 3]), opset=11, outputs=2)
case('Split_opset11_equal', 'Split', [f32(2, 6)], attrs=dict(axis=-1), opset=11, outputs=3)
case('Split_opset13_input', 'Split', [f32(2, 6), i64([1, 5])], attrs=dict(axis=1), outputs=2)
case('Split_opset13_zero_part', 'Split', [f32(4, 3), i64([0, 4])], outputs=2)
case('Split_opset13_equal', 'Split', [f32(6, 2)], outputs=2)
case('Split_opset18_num_outputs', 'Split', [f32(5, 2)], attrs=dict(num_outputs=2), opset=18, outputs=2)
case('Split_opset18_num_outputs_3_of_7', 'Split', [f32(2, 7)], attrs=dict(axis=1, num_outputs=3), opset=18, outputs=3)
case('Split_i64', 'Split', [i64([1, 2, 3, 4]), i64([3, 1])], outputs=2)
case('Split_negative_size', 'Split', [f32(4, 2), i64([-1, 5])], outputs=2, expect='both_refuse', words=['negative'])
case('Split_sizes_overflow', 'Split', [f32(4, 2), i64([I64_MAX, I64_MAX, 6])], outputs=3,
     expect='both_refuse', words=['do not add up to 4'])

case('Concat_axis0', 'Concat', [f32(2, 3), f32(1, 3)], attrs=dict(axis=0))
case('Concat_negative_axis', 'Concat', [f32(2, 3), f32(2, 1), f32(2, 2)], attrs=dict(axis=-1), opset=11)
case('Concat_empty_input', 'Concat', [f32(0, 3), f32(2, 3)], attrs=dict(axis=0))
case('Concat_i64', 'Concat', [i64([1]), i64([I64_MAX, I64_MIN]), i64([0])], attrs=dict(axis=0), opset=7)
case('Concat_mismatch', 'Concat', [f32(2, 3), f32(2, 4)], attrs=dict(axis=0), expect='both_refuse', words=['differ'])

case('Expand_broadcast', 'Expand', [f32(3, 1), i64([2, 1, 4])], opset=8)
case('Expand_smaller_shape', 'Expand', [f32(2, 3), i64([3])])
case('Expand_ones', 'Expand', [f32(2, 1), i64([1, 1, 1])])
case('Expand_i64', 'Expand', [i64([[I64_MIN], [I64_MAX]]), i64([2, 3])])
case('Expand_to_empty', 'Expand', [f32(1, 3), i64([0, 3])])
case('Expand_bad', 'Expand', [f32(2, 3), i64([4, 3])], expect='both_refuse', words=['cannot expand'])

case('Shape_opset13', 'Shape', [f32(2, 3, 4)])
case('Shape_opset15_start_end', 'Shape', [f32(2, 3, 4, 5)], attrs=dict(start=1, end=-1), opset=15)
case('Shape_opset15_negative_start', 'Shape', [f32(2, 3, 4)], attrs=dict(start=-2), opset=15)
case('Shape_opset15_clamped', 'Shape', [f32(2, 3)], attrs=dict(start=-10, end=10), opset=15)
case('Shape_opset15_empty_range', 'Shape', [f32(2, 3)], attrs=dict(start=2, end=1), opset=15)
case('Shape_of_scalar', 'Shape', [np.array(1.0, np.float32)])
case('Shape_of_empty', 'Shape', [f32(0, 7)])

# ------------------------------------------------------------------------------------ constants, casts
F, D, I64T, I32T, B = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
xf = np.array([-2.7, -1.5, -0.5, 0, 0.5, 1.5, 2.7, 1e9, -1e9], np.float32)
case('Cast_f32_to_i64', 'Cast', [xf], attrs=dict(to=I64T))
case('Cast_f32_to_i32', 'Cast', [xf], attrs=dict(to=I32T))
case('Cast_f32_to_bool', 'Cast', [np.array([0, -0.0, 1, -2, np.inf], np.float32)], attrs=dict(to=B))
case('Cast_i64_to_f32', 'Cast', [i64([I64_MIN, -1, 0, 1 << 24, (1 << 24) + 1, I64_MAX])], attrs=dict(to=F))
case('Cast_i64_to_i32_wraps', 'Cast', [i64([(1 << 32) + 5, 1 << 31, -(1 << 31) - 1, -1])], attrs=dict(to=I32T))
case('Cast_i64_to_bool', 'Cast', [i64([0, 1, -1, I64_MIN])], attrs=dict(to=B))
case('Cast_bool_to_f32', 'Cast', [np.array([True, False])], attrs=dict(to=F))
case('Cast_bool_to_i64', 'Cast', [np.array([True, False])], attrs=dict(to=I64T))
case('Cast_i32_to_i64', 'Cast', [i32([I32_MIN, I32_MAX])], attrs=dict(to=I64T))
case('Cast_i8_to_f32', 'Cast', [np.array([-128, 127, 0], np.int8)], attrs=dict(to=F))
case('Cast_u8_to_i64', 'Cast', [np.array([0, 255, 7], np.uint8)], attrs=dict(to=I64T))
case('Cast_i16_to_f32', 'Cast', [np.array([-32768, 32767], np.int16)], attrs=dict(to=F))
case('Cast_f64_to_f32', 'Cast', [np.array([1.5, -2.25, 1e-3], np.float64)], attrs=dict(to=F))
case('Cast_f16_to_f32', 'Cast', [np.array([1.5, -2.25, 65504, 6e-8], np.float16)], attrs=dict(to=F))
case('Cast_f32_to_f64', 'Cast', [np.array([1.5, -2.25, 0.1], np.float32)], attrs=dict(to=D))  # vitcc: in float32
case('Cast_empty', 'Cast', [np.zeros((0, 2), np.float32)], attrs=dict(to=I64T))
case('Cast_opset7', 'Cast', [np.array([1.9, -1.9], np.float32)], attrs=dict(to=I64T), opset=7)
# ORT 1.30 returns INT64_MIN / INT32_MIN (the x86 conversion's 'indefinite' value) for these.
case('Cast_f32_out_of_i64_range', 'Cast', [np.array([1e30], np.float32)], attrs=dict(to=I64T), ort=False,
     expect='refuse', words=['out of the range of int64'])
case('Cast_f32_2pow63', 'Cast', [np.array([9.223372e18], np.float32)], attrs=dict(to=I64T), ort=False,
     expect='refuse', words=['out of the range of int64'])
case('Cast_f32_out_of_i32_range', 'Cast', [np.array([3e9], np.float32)], attrs=dict(to=I32T), ort=False,
     expect='refuse', words=['out of the range of int32'])
case('Cast_f32_nan_to_i64', 'Cast', [np.array([np.nan], np.float32)], attrs=dict(to=I64T), ort=False,
     expect='refuse', words=['non-finite'])

case('Constant_value_tensor', 'Constant', [], attrs=dict(value=numpy_helper.from_array(f32(2, 3), 'v')), opset=9)
case('Constant_value_i64', 'Constant', [], attrs=dict(value=numpy_helper.from_array(i64([I64_MIN, I64_MAX]), 'v')))
case('Constant_value_float', 'Constant', [], attrs=dict(value_float=2.5), opset=12)
case('Constant_value_floats', 'Constant', [], attrs=dict(value_floats=[1.0, -2.0]), opset=12)
case('Constant_value_int', 'Constant', [], attrs=dict(value_int=-7), opset=13)
case('Constant_value_ints', 'Constant', [], attrs=dict(value_ints=[I64_MIN, 0, I64_MAX]), opset=13)
case('Constant_empty_tensor', 'Constant', [], attrs=dict(value=numpy_helper.from_array(np.zeros((0, 3), np.float32), 'v')))

case('ConstantOfShape_default', 'ConstantOfShape', [i64([2, 3])], opset=9)
case('ConstantOfShape_float', 'ConstantOfShape', [i64([3])], attrs=dict(value=numpy_helper.from_array(np.array([1.5], np.float32), 'v')))
case('ConstantOfShape_i64', 'ConstantOfShape', [i64([2, 2])], attrs=dict(value=numpy_helper.from_array(i64([I64_MIN]), 'v')))
case('ConstantOfShape_empty', 'ConstantOfShape', [i64([0, 3])])
case('ConstantOfShape_scalar', 'ConstantOfShape', [np.zeros((0,), np.int64)],
     attrs=dict(value=numpy_helper.from_array(np.array([4.0], np.float32), 'v')))
case('ConstantOfShape_negative', 'ConstantOfShape', [i64([2, -1])], expect='both_refuse', words=['negative'])

case('Range_i64', 'Range', [np.array(2, np.int64), np.array(11, np.int64), np.array(3, np.int64)], opset=11)
case('Range_i64_negative_delta', 'Range', [np.array(5, np.int64), np.array(-6, np.int64), np.array(-4, np.int64)], opset=11)
case('Range_i64_empty', 'Range', [np.array(5, np.int64), np.array(1, np.int64), np.array(1, np.int64)], opset=11)
case('Range_i32', 'Range', [np.array(-3, np.int32), np.array(3, np.int32), np.array(2, np.int32)], opset=11)
case('Range_f32', 'Range', [np.array(0.5, np.float32), np.array(3.0, np.float32), np.array(0.5, np.float32)], opset=11)
case('Range_f32_negative', 'Range', [np.array(1.0, np.float32), np.array(-1.0, np.float32),
                                      np.array(-0.25, np.float32)], opset=11)
# The spec's count is ceil(5 / 2) = 3; ORT 1.30 returns no element (it computes in double, where
# both bounds round to 2^63).
case('Range_i64_near_limits', 'Range', [np.array(I64_MAX - 5, np.int64), np.array(I64_MAX, np.int64),
                                        np.array(2, np.int64)], opset=11, ort=False, expect='expect',
     values=[i64([I64_MAX - 5, I64_MAX - 3, I64_MAX - 1])])
# limit - start overflows int64: the spec's count is ceil((2^64 - 1) / 2^62) = 4
case('Range_i64_full_span', 'Range', [np.array(I64_MIN, np.int64), np.array(I64_MAX, np.int64),
                                      np.array(1 << 62, np.int64)], opset=11)
case('Range_i64_too_long', 'Range', [np.array(0, np.int64), np.array(I64_MAX, np.int64), np.array(1, np.int64)],
     opset=11, expect='both_refuse', words=['9223372036854775807 elements'])
case('Range_f32_too_long', 'Range', [np.array(0, np.float32), np.array(1e30, np.float32), np.array(1e-30, np.float32)],
     opset=11, expect='both_refuse', words=['elements'])
case('Range_f32_nan', 'Range', [np.array(0, np.float32), np.array(np.nan, np.float32), np.array(1, np.float32)],
     opset=11, expect='both_refuse', words=['not finite'])
case('Range_delta_zero', 'Range', [np.array(0, np.int64), np.array(3, np.int64), np.array(0, np.int64)], opset=11,
     expect='both_refuse', words=['delta 0'])

case('Identity_f32', 'Identity', [f32(2, 3)])
case('Identity_i64_empty', 'Identity', [np.zeros((0,), np.int64)], opset=16)
case('Dropout_opset7', 'Dropout', [f32(2, 3)], attrs=dict(ratio=0.3), opset=7)
# Inference keeps every element: the mask is all true (output = data * mask), as the spec's reference
# says from opset 12 on. ORT 1.30 returns an all-false mask for opsets 10 and 11.
xd = f32(2, 3)
case('Dropout_opset10_mask', 'Dropout', [xd], opset=10, outputs=2, ort=False, expect='expect',
     values=[xd, np.ones((2, 3), bool)])
case('Dropout_opset13_mask', 'Dropout', [f32(2, 3)], opset=13, outputs=2)
case('Dropout_opset13_ratio_input', 'Dropout', [f32(2, 3), np.array(0.5, np.float32), np.array(False)], outputs=2)
case('Dropout_training', 'Dropout', [f32(2, 3), np.array(0.5, np.float32), np.array(True)], ort=False,
     expect='refuse', words=['training mode'])


def dtype_name(a):
    return {np.float32: 'float32', np.int64: 'int64', np.int32: 'int32', np.bool_: 'bool', np.int8: 'int8',
            np.uint8: 'uint8', np.int16: 'int16', np.float64: 'float64', np.float16: 'float16'}[a.dtype.type]


def build(c, folder):
    names = [f'in{k}' if a is not None else '' for k, a in enumerate(c['inputs'])]
    outs = [f'out{k}' for k in range(c['outputs'])]
    node = helper.make_node(c['op'], names, outs, name=c['name'], **c['attrs'])
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype) if hasattr(helper, 'np_dtype_to_tensor_dtype')
                                         else onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype], list(a.shape))
           for n, a in zip(names, c['inputs']) if a is not None]
    graph = helper.make_graph([node], c['name'], ins, [helper.make_empty_tensor_value_info(o) for o in outs])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', c['opset'])], producer_name='vitcc-ort-cases')
    m.ir_version = 8 if c['opset'] >= 12 else 7
    with open(os.path.join(folder, 'model.onnx'), 'wb') as f:
        f.write(m.SerializeToString())
    inputs = []
    for k, (n, a) in enumerate(zip(names, c['inputs'])):
        if a is None:
            inputs.append(None)
            continue
        with open(os.path.join(folder, f'in_{k}.pb'), 'wb') as f:
            f.write(numpy_helper.from_array(a, n).SerializeToString())
        a.astype(a.dtype.newbyteorder('<')).tofile(os.path.join(folder, f'in_{k}.bin'))
        inputs.append(dict(name=n, dtype=dtype_name(a), shape=list(a.shape)))
    expected = None
    if c['values'] is not None:
        expected = []
        for k, v in enumerate(c['values']):
            with open(os.path.join(folder, f'expect_{k}.pb'), 'wb') as f:
                f.write(numpy_helper.from_array(v, f'out{k}').SerializeToString())
            expected.append(f'expect_{k}.pb')
    return dict(name=c['name'], op=c['op'], opset=c['opset'], inputs=inputs, outputs=outs, expect=c['expect'],
                words=c['words'], ort=c['ort'], rtol=c['rtol'], atol=c['atol'], expected=expected)


def main(out):
    with open(__file__, 'rb') as f:
        stamp = hashlib.sha256(f.read()).hexdigest()[:32]
    stamp_file = os.path.join(out, 'stamp')
    if os.path.exists(stamp_file) and open(stamp_file).read() == stamp:
        return 0
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    names = set()
    listed = []
    for c in CASES:
        assert c['name'] not in names, c['name']
        names.add(c['name'])
        folder = os.path.join(out, c['name'])
        os.makedirs(folder)
        listed.append(build(c, folder))
    with open(os.path.join(out, 'cases.json'), 'w') as f:
        json.dump(dict(cases=listed), f, indent=1)
    with open(stamp_file, 'w') as f:
        f.write(stamp)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
