// ResNets as torchvision defines them (torchvision.models.resnet: BasicBlock, Bottleneck with the
// stride on its 3x3 convolution, "ResNet v1.5"), with torchvision's module names, so that a
// torchvision state dict (`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
// `layer2.0.downsample.0.weight`, `fc.bias`, ...) loads as it is: ResNet-18/34/50/101/152 and the
// ResNeXt / wide variants through groups and widthPerGroup. Shapes: N batch, C channels, H x W.
import type { Backend } from '../backend/backend.js';
import { add, relu } from '../autograd/ops.js';
import { tidy, type Variable } from '../autograd/variable.js';
import { InvalidArgumentError } from '../errors.js';
import { defaultGenerator, type Generator } from '../random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Sequential } from './container.js';
import { crossEntropy } from './functional.js';
import { defaultBackend, Linear, positiveInt } from './layers.js';
import { Module } from './module.js';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d } from './vision_layers.js';
import { noGrad } from '../autograd/variable.js';

export type ResNetBlock = 'basic' | 'bottleneck';

/** torchvision's ResNet arguments (camelCase). */
export interface ResNetConfig {
  /** BasicBlock (ResNet-18/34) or Bottleneck (ResNet-50 and deeper). */
  block: ResNetBlock;
  /** Blocks in layer1..layer4. */
  layers: readonly [number, number, number, number];
  /** Default 1000. */
  numClasses?: number;
  /** Zero-initialise the last BN of each residual branch (torchvision's zero_init_residual); default false. */
  zeroInitResidual?: boolean;
  /** Bottleneck 3x3 convolution groups (ResNeXt); default 1. */
  groups?: number;
  /** Bottleneck width per group; default 64 (wide ResNets: 128). */
  widthPerGroup?: number;
  /**
   * Channels of the stem and of layer1 (layer i has width 2^(i-1) times it); default 64, as in
   * every torchvision ResNet. Smaller widths give the narrow models of the tests (not torchvision's).
   */
  width?: number;
}

/** torchvision's five ResNet configurations. */
export const RESNET_CONFIGS = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  resnet101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  resnet152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
} as const satisfies Record<string, ResNetConfig>;

export type ResNetName = keyof typeof RESNET_CONFIGS;

export interface ResNetOptions {
  backend?: Backend;
  generator?: Generator;
}

interface BlockOptions extends ResNetOptions {
  stride: number;
  downsample: Sequential | null;
  groups: number;
  baseWidth: number;
  dilation: number;
}

/** He initialisation of torchvision: N(0, 2 / fan_out), fan_out = O * kh * kw. */
function conv(inC: number, outC: number, k: number, stride: number, o: ResNetOptions, extra: { groups?: number; dilation?: number } = {}): Conv2d {
  const padding = k === 3 ? (extra.dilation ?? 1) : 0;
  return new Conv2d(inC, outC, k, {
    backend: o.backend, generator: o.generator, stride, padding, groups: extra.groups ?? 1, dilation: extra.dilation ?? 1, bias: false, initStd: Math.sqrt(2 / (outC * k * k)),
  });
}

const bn = (c: number, o: ResNetOptions): BatchNorm2d => new BatchNorm2d(c, { backend: o.backend });

/** torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3x3 convolutions. */
export class BasicBlock extends Module {
  static readonly expansion = 1;
  conv1: Conv2d; bn1: BatchNorm2d; conv2: Conv2d; bn2: BatchNorm2d;
  downsample: Sequential | null;

  constructor(inplanes: number, planes: number, o: BlockOptions) {
    super();
    if (o.groups !== 1 || o.baseWidth !== 64) throw new InvalidArgumentError('BasicBlock only supports groups 1 and widthPerGroup 64');
    this.conv1 = conv(inplanes, planes, 3, o.stride, o);
    this.bn1 = bn(planes, o);
    this.conv2 = conv(planes, planes, 3, 1, o);
    this.bn2 = bn(planes, o);
    this.downsample = o.downsample;
  }

  forward(x: Variable): Variable {
    return tidy(() => {
      const out = this.bn2.forward(this.conv2.forward(relu(this.bn1.forward(this.conv1.forward(x)))));
      return relu(add(out, this.downsample ? this.downsample.forward(x) : x));
    });
  }
}

/** torchvision's Bottleneck: 1x1 -> 3x3 (stride, groups) -> 1x1 (x4 channels), plus the shortcut. */
export class Bottleneck extends Module {
  static readonly expansion = 4;
  conv1: Conv2d; bn1: BatchNorm2d; conv2: Conv2d; bn2: BatchNorm2d; conv3: Conv2d; bn3: BatchNorm2d;
  downsample: Sequential | null;

  constructor(inplanes: number, planes: number, o: BlockOptions) {
    super();
    const width = Math.floor(planes * (o.baseWidth / 64)) * o.groups;
    this.conv1 = conv(inplanes, width, 1, 1, o);
    this.bn1 = bn(width, o);
    this.conv2 = conv(width, width, 3, o.stride, o, { groups: o.groups, dilation: o.dilation });
    this.bn2 = bn(width, o);
    this.conv3 = conv(width, planes * Bottleneck.expansion, 1, 1, o);
    this.bn3 = bn(planes * Bottleneck.expansion, o);
    this.downsample = o.downsample;
  }

  forward(x: Variable): Variable {
    return tidy(() => {
      let out = relu(this.bn1.forward(this.conv1.forward(x)));
      out = relu(this.bn2.forward(this.conv2.forward(out)));
      out = this.bn3.forward(this.conv3.forward(out));
      return relu(add(out, this.downsample ? this.downsample.forward(x) : x));
    });
  }
}

/**
 * torchvision.models.ResNet: conv1 (7x7, stride 2) -> bn1 -> relu -> maxpool (3x3, stride 2) ->
 * layer1..layer4 -> avgpool -> fc. forward(images [N, 3, H, W]) -> logits [N, numClasses].
 */
export class ResNet extends Module {
  readonly config: Required<ResNetConfig>;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  maxpool: MaxPool2d;
  layer1: Sequential<BasicBlock | Bottleneck>;
  layer2: Sequential<BasicBlock | Bottleneck>;
  layer3: Sequential<BasicBlock | Bottleneck>;
  layer4: Sequential<BasicBlock | Bottleneck>;
  avgpool: AdaptiveAvgPool2d;
  flatten: Flatten;
  fc: Linear;

  constructor(config: ResNetConfig, options: ResNetOptions = {}) {
    super();
    const c: Required<ResNetConfig> = { numClasses: 1000, zeroInitResidual: false, groups: 1, widthPerGroup: 64, width: 64, ...config };
    if (c.block !== 'basic' && c.block !== 'bottleneck') throw new InvalidArgumentError(`ResNet block must be 'basic' or 'bottleneck', got ${JSON.stringify(c.block)}`);
    if (!Array.isArray(c.layers) || c.layers.length !== 4) throw new InvalidArgumentError('ResNet layers must list 4 block counts');
    c.layers.forEach((n, i) => positiveInt(`layers[${i}]`, n));
    for (const k of ['numClasses', 'groups', 'widthPerGroup', 'width'] as const) positiveInt(k, c[k]);
    this.config = c;
    const o: ResNetOptions = { backend: options.backend ?? defaultBackend(), generator: options.generator ?? defaultGenerator };
    const Block = c.block === 'basic' ? BasicBlock : Bottleneck;
    let inplanes = c.width;
    this.conv1 = new Conv2d(3, inplanes, 7, { stride: 2, padding: 3, bias: false, initStd: Math.sqrt(2 / (inplanes * 49)), backend: o.backend, generator: o.generator });
    this.bn1 = bn(inplanes, o);
    this.maxpool = new MaxPool2d(3, { stride: 2, padding: 1 });
    const makeLayer = (planes: number, blocks: number, stride: number): Sequential<BasicBlock | Bottleneck> => {
      const out = planes * Block.expansion;
      const downsample = stride !== 1 || inplanes !== out ? new Sequential([conv(inplanes, out, 1, stride, o), bn(out, o)]) : null;
      const list: (BasicBlock | Bottleneck)[] = [new Block(inplanes, planes, { ...o, stride, downsample, groups: c.groups, baseWidth: c.widthPerGroup, dilation: 1 })];
      inplanes = out;
      for (let i = 1; i < blocks; i++) list.push(new Block(inplanes, planes, { ...o, stride: 1, downsample: null, groups: c.groups, baseWidth: c.widthPerGroup, dilation: 1 }));
      return new Sequential(list);
    };
    this.layer1 = makeLayer(c.width, c.layers[0], 1);
    this.layer2 = makeLayer(c.width * 2, c.layers[1], 2);
    this.layer3 = makeLayer(c.width * 4, c.layers[2], 2);
    this.layer4 = makeLayer(c.width * 8, c.layers[3], 2);
    this.avgpool = new AdaptiveAvgPool2d(1);
    this.flatten = new Flatten(1);
    this.fc = new Linear(c.width * 8 * Block.expansion, c.numClasses, o);
    if (c.zeroInitResidual) {
      noGrad(() => {
        for (const m of this.modules()) {
          const last = m instanceof Bottleneck ? m.bn3 : m instanceof BasicBlock ? m.bn2 : null;
          if (last?.weight) {
            const w = last.weight.data;
            w.backend.write(w.storage, new Float32Array(w.size));
          }
        }
      });
    }
  }

  forward(x: Variable): Variable {
    if (x.shape.length !== 4 || x.shape[1] !== 3) throw new InvalidArgumentError(`ResNet.forward expects images [N, 3, H, W], got [${x.shape.join(', ')}]`);
    return tidy(() => {
      let h = this.maxpool.forward(relu(this.bn1.forward(this.conv1.forward(x))));
      h = this.layer4.forward(this.layer3.forward(this.layer2.forward(this.layer1.forward(h))));
      return this.fc.forward(this.flatten.forward(this.avgpool.forward(h)));
    });
  }

  /** Mean cross-entropy of the logits against int32 class labels [N]. */
  loss(x: Variable, labels: Tensor): Variable {
    return tidy(() => crossEntropy(this.forward(x), labels));
  }
}

/** A torchvision ResNet by name ('resnet18' ... 'resnet152'), with overrides (numClasses, width, ...). */
export function resnet(name: ResNetName, overrides: Partial<ResNetConfig> = {}, options: ResNetOptions = {}): ResNet {
  const base = RESNET_CONFIGS[name];
  if (!base) throw new InvalidArgumentError(`unknown ResNet ${JSON.stringify(name)}; one of ${Object.keys(RESNET_CONFIGS).join(', ')}`);
  return new ResNet({ ...base, ...overrides }, options);
}
