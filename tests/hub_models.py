"""Small random-weight keras-hub vision models, for export tests.

Each entry of `FAMILIES` is a zero-argument constructor returning a built Functional
`keras.Model` (a keras-hub `Backbone` or task model) of one keras-hub vision family, as
small as the family's constructor allows while still running every kind of block the
family is made of (one or two blocks per stage, 8-64 channels, 32x32 or 64x64 images).
Nothing is downloaded: no preset is loaded, every Backbone is constructed directly with
explicit arguments and keeps its random initial weights. Every model has a fully static
input shape except the batch dimension, so `model.inputs[0].shape[1:]` is its input
shape. The constructors run under KERAS_BACKEND=tensorflow, jax and torch.

Random initial weights leave every BatchNormalization an identity (moving mean 0,
variance 1, gamma 1, beta 0), which hides a wrong folding or a wrong axis;
`bn_as_trained` draws realistic statistics instead. `build(name, seed)` seeds Keras,
constructs the model and applies `bn_as_trained`.

Where keras-hub fixes a width (so a model cannot be smaller), and which families are not
here, is said in the comment above `FAMILIES`.
"""

import collections

import numpy as np
import keras
import keras_hub

M = keras_hub.models


# --- CNN backbones -----------------------------------------------------------------------

def resnet():
    """ResNet v1 with bottleneck blocks (ResNet50 style): a projection-shortcut block in
    each stage, then an identity-shortcut block. `stackwise_num_filters[0]` must be 64."""
    return M.ResNetBackbone(
        input_conv_filters=[16], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 8], stackwise_num_blocks=[1, 2],
        stackwise_num_strides=[1, 2], block_type="bottleneck_block",
        use_pre_activation=False, image_shape=(64, 64, 3))


def resnet_v2():
    """ResNetV2: pre-activation basic blocks, -inf padded stem pool, post BN/ReLU. With
    basic blocks the stem must have 64 channels (the first block's shortcut is identity)."""
    return M.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16], stackwise_num_blocks=[1, 2],
        stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=True, image_shape=(64, 64, 3))


def resnet_vd():
    """ResNet-vd: three-conv deep stem, and stride-2 shortcuts as AveragePooling + 1x1."""
    return M.ResNetBackbone(
        input_conv_filters=[8, 8, 16], input_conv_kernel_sizes=[3, 3, 3],
        stackwise_num_filters=[64, 8], stackwise_num_blocks=[1, 2],
        stackwise_num_strides=[1, 2], block_type="bottleneck_block_vd",
        use_pre_activation=False, image_shape=(64, 64, 3))


def _small_resnet(image_shape=(64, 64, 3), stacks=2):
    """ResNet18-style basic blocks (stem 64, as the first identity block requires)."""
    filters = [64, 8, 8, 8][:stacks]
    return M.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=filters, stackwise_num_blocks=[1] * stacks,
        stackwise_num_strides=[1] + [2] * (stacks - 1), block_type="basic_block",
        use_pre_activation=False, image_shape=image_shape)


def mobilenet_v3():
    """MobileNetV3-Small style: depthwise stem block with SE, inverted residual blocks
    (relu and hard_swish, 3x3 and 5x5, with and without SE, one with a residual)."""
    return M.MobileNetBackbone(
        stackwise_expansion=[[16], [32, 48]],
        stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[8], [16, 16]],
        stackwise_kernel_size=[[3], [5, 5]],
        stackwise_num_strides=[[2], [2, 1]],
        stackwise_se_ratio=[[None], [0.25, 0.25]],
        stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [2, 2]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        squeeze_and_excite=0.5,
        image_shape=(64, 64, 3),
        input_activation="hard_swish",
        output_activation="hard_swish",
        input_num_filters=8)


def efficientnet():
    """EfficientNet (B0 style) with the original "v1" MBConv blocks: expand ratio 1 and
    6, SE, 3x3 and 5x5 depthwise, the stride-2 correct-pad, identity skips."""
    return M.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 3,
        stackwise_depth_coefficients=[1.0] * 3,
        stackwise_kernel_sizes=[3, 3, 5],
        stackwise_num_repeats=[1, 2, 1],
        stackwise_input_filters=[8, 8, 16],
        stackwise_output_filters=[8, 16, 24],
        stackwise_expansion_ratios=[1, 6, 6],
        stackwise_squeeze_and_excite_ratios=[0.25, 0.25, 0.25],
        stackwise_strides=[1, 2, 2],
        stackwise_block_types=["v1"] * 3,
        include_stem_padding=True,
        use_depth_divisor_as_min_depth=True,
        cap_round_filter_decrease=True,
        stem_conv_padding="valid",
        batch_norm_momentum=0.99,
        batch_norm_epsilon=1e-3,
        num_features=32,
        input_shape=(64, 64, 3))


def efficientnet_v2():
    """EfficientNetV2 (B0 style): FusedMBConv blocks (expand ratio 1 and 4) then MBConv
    ("unfused") blocks with SE."""
    return M.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 4,
        stackwise_depth_coefficients=[1.0] * 4,
        stackwise_kernel_sizes=[3, 3, 3, 3],
        stackwise_num_repeats=[1, 2, 1, 2],
        stackwise_input_filters=[8, 8, 16, 24],
        stackwise_output_filters=[8, 16, 24, 32],
        stackwise_expansion_ratios=[1, 4, 4, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.0, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 1],
        stackwise_block_types=["fused", "fused", "unfused", "unfused"],
        include_stem_padding=False,
        stem_conv_padding="same",
        num_features=48,
        input_shape=(64, 64, 3))


def cspnet():
    """CSPDarkNet style: cross-stage-partial stages of dark blocks."""
    return M.CSPNetBackbone(
        stem_filters=8, stem_kernel_size=3, stem_strides=1,
        stackwise_depth=[1, 2], stackwise_strides=[2, 2],
        stackwise_num_filters=[16, 32], block_type="dark_block", stage_type="csp",
        bottle_ratio=[0.5, 0.5], block_ratio=[1.0, 1.0], expand_ratio=[2.0, 2.0],
        image_shape=(64, 64, 3))


def densenet():
    """DenseNet: dense blocks of BN-ReLU-Conv pairs with concatenation, one transition.
    The stem is fixed at 64 channels."""
    return M.DenseNetBackbone(stackwise_num_repeats=[2, 2], growth_rate=8,
                              image_shape=(64, 64, 3))


def vgg():
    return M.VGGBackbone(stackwise_num_repeats=[1, 2], stackwise_num_filters=[8, 16],
                         image_shape=(32, 32, 3))


def xception():
    """Xception: conv entry block, a separable block with a strided 1x1 residual and max
    pool, a middle-flow block with an identity residual, and the exit block."""
    return M.XceptionBackbone(
        stackwise_conv_filters=[[8, 16], [32, 32], [32, 32, 32], [32, 48]],
        stackwise_pooling=[False, True, False, False],
        image_shape=(64, 64, 3))


def hgnetv2():
    """HGNetV2: stem, HG blocks with and without the light (1x1 + depthwise) conv block,
    learnable affine blocks, downsampling stages."""
    return M.HGNetV2Backbone(
        depths=[1, 1],
        embedding_size=16,
        hidden_sizes=[16, 32],
        stem_channels=[3, 8, 16],
        hidden_act="relu",
        use_learnable_affine_block=True,
        stackwise_stage_filters=[(16, 8, 16, 1, 2, 3), (16, 8, 32, 1, 2, 5)],
        apply_downsample=[False, True],
        use_lightweight_conv_block=[False, True],
        image_shape=(64, 64, 3))


# --- Transformer backbones ------------------------------------------------------------

def _tiny_mit(image_shape=(64, 64, 3)):
    return M.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2],
        image_shape=image_shape, hidden_dims=[8, 16])


def mit():
    """MixTransformer: overlapping patch embeddings, efficient attention with (sr_ratio
    2) and without sequence reduction, Mix-FFN with depthwise conv."""
    return _tiny_mit()


def mobilenet_v5():
    """MobileNetV5 (Gemma 3n style): EdgeResidual, UniversalInvertedResidual, multi-query
    attention with kv stride, RMS norm, layer scale, multi-scale fusion adapter."""
    return M.MobileNetV5Backbone(
        stackwise_block_types=[["er"], ["uir", "uir"], ["uir", "mqa"]],
        stackwise_num_blocks=[1, 2, 2],
        stackwise_num_filters=[[16], [16, 16], [32, 32]],
        stackwise_strides=[[2], [2, 1], [2, 1]],
        stackwise_act_layers=[["relu"], ["gelu", "gelu"], ["gelu", "gelu"]],
        stackwise_exp_ratios=[[2.0], [2.0, 2.0], [2.0, 0.0]],
        stackwise_se_ratios=[[0.0], [0.0, 0.0], [0.0, 0.0]],
        stackwise_dw_kernel_sizes=[[0], [3, 5], [3, 0]],
        stackwise_dw_start_kernel_sizes=[[0], [3, 0], [3, 0]],
        stackwise_dw_end_kernel_sizes=[[0], [0, 3], [0, 0]],
        stackwise_exp_kernel_sizes=[[3], [0, 0], [0, 0]],
        stackwise_pw_kernel_sizes=[[1], [0, 0], [0, 0]],
        stackwise_num_heads=[[0], [0, 0], [0, 2]],
        stackwise_key_dims=[[0], [0, 0], [0, 8]],
        stackwise_value_dims=[[0], [0, 0], [0, 8]],
        stackwise_kv_strides=[[0], [0, 0], [0, 2]],
        stackwise_use_cpe=[[False], [False, False], [False, False]],
        stem_size=8,
        num_features=32,
        use_msfa=True,
        msfa_indices=(-2, -1),
        msfa_output_resolution=4,
        act_layer="gelu",
        norm_layer="rms_norm",
        layer_scale_init_value=1e-5,
        image_shape=(64, 64, 3))


def vitdet():
    """ViTDet / SAM image encoder: patch embedding, absolute and relative positions,
    windowed attention (window 3 on an 8x8 token grid, so the windows are padded) and a
    global-attention layer, then the conv neck."""
    return M.ViTDetBackbone(
        hidden_size=16, num_layers=2, intermediate_dim=32, num_heads=2,
        global_attention_layer_indices=[1], image_shape=(64, 64, 3), patch_size=8,
        num_output_channels=16, use_abs_pos=True, use_rel_pos=True, window_size=3)


def _tiny_dinov2(num_layers=2, image_shape=(32, 32, 3)):
    return M.DINOV2Backbone(
        patch_size=8, num_layers=num_layers, hidden_dim=16, num_heads=2,
        intermediate_dim=32, image_shape=image_shape,
        position_embedding_shape=(64, 64, 3))


def dinov2():
    """DINOv2: patch embedding, CLS token, position embeddings interpolated from an 8x8
    grid to the 4x4 grid, encoder layers with layer scale."""
    return _tiny_dinov2()


def depth_anything():
    """Depth Anything: a DINOv2 encoder, reassemble (up/down-sampling) neck, fusion
    blocks and the depth head. The neck builds its 3x3 convs on the unpadded
    reassembled maps, so the 0.5x level needs a token grid of at least 6x6: 8x8 here."""
    return M.DepthAnythingBackbone(
        image_encoder=_tiny_dinov2(num_layers=4, image_shape=(64, 64, 3)),
        reassemble_factors=[4, 2, 1, 0.5], neck_hidden_dims=[8, 8, 16, 16],
        fusion_hidden_dim=16, head_hidden_dim=8, head_in_index=-1,
        feature_keys=["stage1", "stage2", "stage3", "stage4"])


# --- Task models ------------------------------------------------------------------------

def deeplabv3():
    """DeepLabV3+ on a three-stage ResNet: atrous spatial pyramid pooling on P4 (256
    channels, fixed by keras-hub), low-level P2 projection, bilinear upsampling."""
    backbone = M.DeepLabV3Backbone(
        image_encoder=_small_resnet(image_shape=(None, None, 3), stacks=3),
        spatial_pyramid_pooling_key="P4", upsampling_size=4, dilation_rates=[2, 4, 6],
        low_level_feature_key="P2", projection_filters=8, image_shape=(64, 64, 3))
    return M.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=3)


def retinanet():
    """RetinaNet's raw outputs (box regression deltas and class logits per anchor): the
    detector's Functional graph without its decode/NMS step, which runs only in
    predict_step. The FPN and head widths are fixed by keras-hub at 256."""
    backbone = M.RetinaNetBackbone(
        image_encoder=_small_resnet(image_shape=(None, None, 3), stacks=4),
        min_level=3, max_level=6, use_p5=False, image_shape=(64, 64, 3))
    detector = M.RetinaNetObjectDetector(
        backbone=backbone, num_classes=3, bounding_box_format="yxyx",
        pre_logits_num_conv_layers=1)
    # `output` (not `outputs`) keeps the dict {"bbox_regression", "cls_logits"}.
    return keras.Model(detector.input, detector.output, name="retinanet_raw")


def basnet():
    """BASNet: ResNet-stage encoder, two extra basic-block stages, dilated bridge,
    decoder, side outputs, residual refinement module; the segmenter returns the refined
    map. Basic-vd stages (projection shortcut in the first stage too) let the
    encoder stem width, projection_filters, be 8 rather than the 64 basic blocks need."""
    encoder = M.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8, 8, 8], stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block_vd",
        use_pre_activation=False)
    backbone = M.BASNetBackbone(image_encoder=encoder, num_classes=1,
                                image_shape=(64, 64, 3), projection_filters=8)
    return M.BASNetImageSegmenter(backbone=backbone)


def segformer():
    """SegFormer on a two-level MiT: per-level MLP projections, resize, fuse, classify."""
    backbone = M.SegFormerBackbone(image_encoder=_tiny_mit(), projection_filters=16)
    return M.SegFormerImageSegmenter(backbone=backbone, num_classes=3)


def resnet_classifier():
    return M.ResNetImageClassifier(backbone=_small_resnet(), num_classes=5)


def mobilenet_v3_classifier():
    """MobileNet's own head: pooling, 1x1 conv, hard_swish, dense."""
    return M.MobileNetImageClassifier(backbone=mobilenet_v3(), num_classes=5,
                                      num_features=32)


def efficientnet_classifier():
    return M.EfficientNetImageClassifier(backbone=efficientnet_v2(), num_classes=5)


def hgnetv2_classifier():
    """HGNetV2's head: its last stage's map, pooling, a 1x1 conv head, dense."""
    return M.HGNetV2ImageClassifier(backbone=hgnetv2(), preprocessor=None,
                                    num_classes=5, head_filters=32)


def vgg_classifier():
    """VGG's head with pooling="flatten": flatten then two hidden dense layers."""
    return M.VGGImageClassifier(backbone=vgg(), num_classes=5, pooling="flatten",
                                pooling_hidden_dim=16)


def vit_classifier():
    """ViT: patch embedding, class token, position embedding, two encoder layers; the
    classifier reads the class token."""
    backbone = M.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2,
                             num_heads=2, hidden_dim=16, mlp_dim=32)
    return M.ViTImageClassifier(backbone=backbone, num_classes=5)


def deit_classifier():
    """DeiT: class and distillation tokens, two encoder layers, token pooling."""
    backbone = M.DeiTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2,
                              num_heads=2, hidden_dim=16, intermediate_dim=32)
    return M.DeiTImageClassifier(backbone=backbone, num_classes=5)


def swin_classifier():
    """Swin Transformer: patch embedding, window attention and shifted-window attention
    (two blocks per stage), patch merging, the pooled classifier head."""
    backbone = M.SwinTransformerBackbone(
        image_shape=(32, 32, 3), embed_dim=8, depths=(2, 2), num_heads=(1, 2),
        window_size=4, patch_size=4, mlp_ratio=2.0, drop_path=0.0)
    return M.SwinTransformerImageClassifier(backbone=backbone, num_classes=5)


def mobilenet_v5_classifier():
    return M.MobileNetV5ImageClassifier(backbone=mobilenet_v5(), num_classes=5,
                                        head_hidden_size=32)


# Size floors keras-hub sets (the constructors take no argument for them):
#   ResNetBackbone: stackwise_num_filters[0] must be 64; with "basic_block" the stem must
#     also have 64 channels (the first block's shortcut is an identity).
#   DenseNetBackbone: the stem conv has 64 channels.
#   DeepLabV3Backbone: ASPP and the segmentation head have 256 channels (~0.55M params).
#   RetinaNetBackbone/ObjectDetector: FPN and prediction heads have 256 channels; with one
#     pre-logits conv per head and levels P3-P6 it is ~3.8M params, still <1 s on TF.
#   BASNetBackbone: its own decoder is 8 x projection_filters wide (~0.9M params at 8).
# Every requested family builds without a preset; none is left out. Not included (not
# asked for): SAMImageSegmenter (prompt encoder and mask decoder take point/box/mask
# inputs; `vitdet` is its image encoder), D-FINE, DINOv3 and SAM3.
FAMILIES = collections.OrderedDict([
    ("resnet", resnet),
    ("resnet_v2", resnet_v2),
    ("resnet_vd", resnet_vd),
    ("mobilenet_v3", mobilenet_v3),
    ("efficientnet", efficientnet),
    ("efficientnet_v2", efficientnet_v2),
    ("cspnet", cspnet),
    ("densenet", densenet),
    ("vgg", vgg),
    ("xception", xception),
    ("hgnetv2", hgnetv2),
    ("mit", mit),
    ("mobilenet_v5", mobilenet_v5),
    ("vitdet", vitdet),
    ("dinov2", dinov2),
    ("depth_anything", depth_anything),
    ("deeplabv3", deeplabv3),
    ("retinanet", retinanet),
    ("basnet", basnet),
    ("segformer", segformer),
    ("resnet_classifier", resnet_classifier),
    ("mobilenet_v3_classifier", mobilenet_v3_classifier),
    ("efficientnet_classifier", efficientnet_classifier),
    ("hgnetv2_classifier", hgnetv2_classifier),
    ("vgg_classifier", vgg_classifier),
    ("vit_classifier", vit_classifier),
    ("deit_classifier", deit_classifier),
    ("swin_classifier", swin_classifier),
    ("mobilenet_v5_classifier", mobilenet_v5_classifier),
])


def bn_as_trained(model, seed=0):
    """Give every BatchNormalization layer (nested ones included) statistics and an affine
    as after training, deterministic by `seed`: moving_mean ~ N(0, 0.1), moving_variance
    ~ U(0.5, 1.5), gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1). Returns the model."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        n = layer.moving_mean.shape[0]
        layer.moving_mean.assign(rng.normal(0.0, 0.1, n).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
        if layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
        if layer.beta is not None:
            layer.beta.assign(rng.normal(0.0, 0.1, n).astype("float32"))
    return model


def build(name, seed=0):
    """FAMILIES[name] with weights drawn from `seed` and BatchNorm as after training."""
    keras.utils.set_random_seed(seed)
    return bn_as_trained(FAMILIES[name](), seed)


def input_shape(model):
    """The model's input shape without the batch dimension."""
    return tuple(keras.tree.flatten(model.inputs)[0].shape[1:])
