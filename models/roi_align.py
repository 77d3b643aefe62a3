"""RoIAlign as Paddle's ``paddle.vision.ops.roi_align`` computes it, in plain torch
(torchvision does not import beside the pinned torch here).

Each box (x1, y1, x2, y2, in input-image pixels; ``spatial_scale`` maps them onto the
feature map) is cut into pooled_h × pooled_w bins; each bin averages a grid of bilinear
samples, ``sampling_ratio`` per side, or ceil(box side / bins) when it is <= 0 (adaptive,
Paddle's default -1). ``aligned`` (Paddle's default True) shifts the box by half a pixel so
that sample positions are pixel centres; unaligned boxes are at least 1 px on each side.
A sample more than one pixel outside the map reads 0; one nearer is clamped to the border.
The grid size depends on the box, so boxes are pooled one at a time.
"""

import torch


def _bilinear(feat, ys, xs):
    """feat C×H×W sampled at every (y, x) of the 1-D position vectors ys (len A), xs (len B):
    C×A×B, with RoIAlign's border rule."""
    _, h, w = feat.shape
    y_out = (ys < -1.0) | (ys > h)
    x_out = (xs < -1.0) | (xs > w)
    ys, xs = ys.clamp(min=0), xs.clamp(min=0)
    y0 = ys.floor().long()
    x0 = xs.floor().long()
    y_edge, x_edge = y0 >= h - 1, x0 >= w - 1
    y0, x0 = y0.clamp(max=h - 1), x0.clamp(max=w - 1)
    ys = torch.where(y_edge, y0.to(ys.dtype), ys)
    xs = torch.where(x_edge, x0.to(xs.dtype), xs)
    y1 = torch.where(y_edge, y0, y0 + 1)
    x1 = torch.where(x_edge, x0, x0 + 1)
    ly, lx = ys - y0, xs - x0
    hy, hx = 1 - ly, 1 - lx
    top = feat[:, y0][:, :, x0] * hx + feat[:, y0][:, :, x1] * lx        # C×A×B
    bottom = feat[:, y1][:, :, x0] * hx + feat[:, y1][:, :, x1] * lx
    out = top * hy[:, None] + bottom * ly[:, None]
    keep = ~(y_out[:, None] | x_out[None, :])
    return out * keep.to(out.dtype)


def roi_align(x, boxes, rois_num, output_size, spatial_scale=1.0, sampling_ratio=-1,
              aligned=True):
    """x N×C×H×W; boxes K×4 (x1, y1, x2, y2), the first rois_num[0] of image 0 and so on;
    -> K×C×ph×pw."""
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    image_of = torch.repeat_interleave(torch.arange(len(rois_num), device=boxes.device),
                                       torch.as_tensor(rois_num, device=boxes.device))
    offset = 0.5 if aligned else 0.0
    outs = []
    for box, n in zip(boxes.to(x.dtype), image_of.tolist()):
        x1, y1, x2, y2 = box * spatial_scale - offset
        bw, bh = x2 - x1, y2 - y1
        if not aligned:
            bw, bh = bw.clamp(min=1.0), bh.clamp(min=1.0)
        bin_h, bin_w = bh / ph, bw / pw
        gh = sampling_ratio if sampling_ratio > 0 else int(torch.ceil(bh / ph))
        gw = sampling_ratio if sampling_ratio > 0 else int(torch.ceil(bw / pw))
        count = max(gh * gw, 1)
        # sample positions: bin p, sub-sample i -> start + p * bin + (i + 0.5) * bin / grid
        iy = (torch.arange(ph, dtype=x.dtype)[:, None] * bin_h
              + (torch.arange(gh, dtype=x.dtype)[None] + 0.5) * bin_h / gh + y1).reshape(-1)
        ix = (torch.arange(pw, dtype=x.dtype)[:, None] * bin_w
              + (torch.arange(gw, dtype=x.dtype)[None] + 0.5) * bin_w / gw + x1).reshape(-1)
        samples = _bilinear(x[n], iy, ix)  # C × ph*gh × pw*gw
        c = samples.shape[0]
        outs.append(samples.reshape(c, ph, gh, pw, gw).sum((2, 4)) / count)
    if not outs:
        return x.new_zeros((0, x.shape[1], ph, pw))
    return torch.stack(outs)
