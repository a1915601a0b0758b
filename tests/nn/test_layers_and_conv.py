import torch

from wmlab.nn.conv import ConvDecoder, ConvEncoder
from wmlab.nn.layers import DenseBlock, MLPHead, fan_avg


def test_dense_block_has_no_bias_and_layer_norm_eps_1e_3():
    block = DenseBlock(64, 32)
    linear, norm = block[0], block[1]
    assert linear.bias is None and norm.eps == 1e-3 and norm.elementwise_affine
    expected_std = (1 / fan_avg(linear.weight)) ** 0.5
    assert abs(linear.weight.std().item() - expected_std) < 0.15 * expected_std  # not PyTorch's Kaiming uniform


def test_zero_output_heads_start_at_zero():
    head = MLPHead(16, 255, 32, 2, zero_output=True)
    assert torch.equal(head(torch.randn(4, 16)), torch.zeros(4, 255))


def test_conv_encoder_decoder_shapes_and_channel_norm():
    encoder, decoder = ConvEncoder(depth=32), ConvDecoder(1536, depth=32)
    images = torch.randint(0, 256, (2, 5, 64, 64, 3), dtype=torch.uint8)
    assert encoder(images).shape == (2, 5, 4096)
    out = decoder(torch.randn(2, 5, 1536))
    assert out.shape == (2, 5, 64, 64, 3)
    assert abs(out.mean().item() - 0.5) < 0.3, "decoder output is centred on 0.5 (no sigmoid)"
    norm = encoder.net[1].norm
    assert norm.normalized_shape == (32,), "LayerNorm over channels only"
