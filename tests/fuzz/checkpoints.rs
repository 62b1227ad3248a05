//! Seed checkpoints of the fuzz targets of the model and training crates (included with
//! `#[path = "../../tests/fuzz/checkpoints.rs"] mod checkpoints;` next to `mutate`): the
//! state dicts of a tiny classifier and pre-training model with deterministic values, written
//! as safetensors files and as PyTorch `.pth` zips (pickle protocol 2, as `torch.save` writes).

#![allow(dead_code)]

use std::io::{Cursor, Write};

use burn::backend::Flex;
use burn::tensor::{bf16, f16};
use safetensors::Dtype;
use vidcls_model::loader::{save_classifier_safetensors, save_pretrain_safetensors};
use vidcls_model::{
    BertConfig, SwinConfig, TwoStreamEncoderConfig, VideoModelConfig, VideoTextEncoderConfig,
};

use crate::mutate::{Seed, ZIP_TOKENS, json_strings, zip_fields};

/// A tiny model: Swin on 16 px frames (patch 2, embedding 4, two stages of two blocks, window
/// 4), BERT of hidden size 8 (2 heads, vocabulary 16, 8 positions), one text, one visual and
/// one cross-modality layer, 3 classes. Its state dicts hold a few thousand values.
pub fn tiny_config() -> VideoModelConfig {
    let swin = SwinConfig::new(16, 2, 4, vec![2, 2], vec![1, 2], 4);
    let bert = BertConfig::new(16, 8, 1, 2, 16).with_max_position_embeddings(8);
    let two_stream = TwoStreamEncoderConfig::new(bert, 1, 1, 1);
    VideoModelConfig::new(VideoTextEncoderConfig::new(swin, two_stream)).with_num_classes(3)
}

/// Which model a state dict is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A [`vidcls_model::VideoClassifier`].
    Classifier,
    /// A [`vidcls_model::VideoPretrainModel`].
    Pretrain,
}

/// One tensor of a state dict.
#[derive(Debug, Clone)]
pub struct StoredTensor {
    /// Its reference name.
    pub name: String,
    /// Its type.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, little-endian.
    pub data: Vec<u8>,
}

/// The `i`-th value of the deterministic weights: in [-1, 1), not a pattern of zeros.
fn value(i: usize) -> f32 {
    (i * 7919 % 200) as f32 / 100.0 - 1.0
}

/// The reference state dict of the tiny model of `kind` ([`tiny_config`]), as vidcls exports
/// it, with deterministic float values (the same files on every run: proptest's fork mode
/// replays cases in new processes).
pub fn state_dict(kind: Kind) -> Vec<StoredTensor> {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let config = tiny_config();
    let saved = match kind {
        Kind::Classifier => {
            save_classifier_safetensors(&config.init_classifier::<Flex>(&device), &path)
        }
        Kind::Pretrain => save_pretrain_safetensors(&config.init_pretrain::<Flex>(&device), &path),
    };
    saved.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<StoredTensor> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| StoredTensor {
            name,
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            data: view.data().to_vec(),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut index = 0;
    for tensor in tensors.iter_mut().filter(|t| t.dtype == Dtype::F32) {
        let count = tensor.data.len() / 4;
        tensor.data = (index..index + count)
            .flat_map(|i| value(i).to_le_bytes())
            .collect();
        index += count;
    }
    tensors
}

/// The state dict with its float tensors converted in turn to F16, BF16, F64, I64, I32, U8,
/// BOOL and F32: valid files of types the loader must refuse or convert.
pub fn mixed_dtypes(tensors: &[StoredTensor]) -> Vec<StoredTensor> {
    let cycle = [
        Dtype::F16,
        Dtype::BF16,
        Dtype::F64,
        Dtype::I64,
        Dtype::I32,
        Dtype::U8,
        Dtype::BOOL,
        Dtype::F32,
    ];
    let mut converted = 0;
    tensors
        .iter()
        .map(|tensor| {
            if tensor.dtype != Dtype::F32 {
                return tensor.clone();
            }
            let dtype = cycle[converted % cycle.len()];
            converted += 1;
            let values = tensor
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
            let data = values
                .enumerate()
                .flat_map(|(i, v)| match dtype {
                    Dtype::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
                    Dtype::BF16 => bf16::from_f32(v).to_le_bytes().to_vec(),
                    Dtype::F64 => (v as f64).to_le_bytes().to_vec(),
                    Dtype::I64 => (i as i64 % 5 - 2).to_le_bytes().to_vec(),
                    Dtype::I32 => (i as i32 % 5 - 2).to_le_bytes().to_vec(),
                    Dtype::U8 => vec![(i % 256) as u8],
                    Dtype::BOOL => vec![(i % 2) as u8],
                    _ => v.to_le_bytes().to_vec(),
                })
                .collect();
            StoredTensor {
                dtype,
                data,
                ..tensor.clone()
            }
        })
        .collect()
}

/// A safetensors file of the tensors.
pub fn safetensors_bytes(tensors: &[StoredTensor]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|tensor| {
            let view = safetensors::tensor::TensorView::new(
                tensor.dtype,
                tensor.shape.clone(),
                &tensor.data,
            )
            .unwrap();
            (tensor.name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// Type names and keys of safetensors headers.
const SAFETENSORS_TOKENS: [&str; 22] = [
    "\"F32\"",
    "\"F16\"",
    "\"BF16\"",
    "\"F64\"",
    "\"I64\"",
    "\"I32\"",
    "\"I16\"",
    "\"I8\"",
    "\"U8\"",
    "\"U16\"",
    "\"U32\"",
    "\"U64\"",
    "\"BOOL\"",
    "\"F8_E4M3\"",
    "\"F8_E5M2\"",
    "\"C64\"",
    "\"dtype\"",
    "\"shape\"",
    "\"data_offsets\"",
    "\"__metadata__\"",
    "[]",
    "null",
];

/// A safetensors seed: the header length and the header's numbers (shapes, data offsets),
/// type names and tensor names are what mutations aim at.
pub fn safetensors_seed(name: &'static str, tensors: &[StoredTensor]) -> Seed {
    let bytes = safetensors_bytes(tensors);
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let names = json_strings(&bytes[8..8 + header_len]);
    Seed::new(name, bytes)
        .fields(vec![0, 4, 8])
        .tokens(SAFETENSORS_TOKENS)
        .tokens(names)
}

/// Writes a pickle (protocol 2), recording where its integers and string lengths are.
#[derive(Default)]
struct Pickle {
    bytes: Vec<u8>,
    fields: Vec<usize>,
}

impl Pickle {
    fn op(&mut self, op: &[u8]) {
        self.bytes.extend_from_slice(op);
    }

    /// BINUNICODE.
    fn string(&mut self, text: &str) {
        self.bytes.push(b'X');
        self.fields.push(self.bytes.len());
        self.bytes.extend((text.len() as u32).to_le_bytes());
        self.bytes.extend(text.as_bytes());
    }

    /// BININT.
    fn int(&mut self, value: usize) {
        self.bytes.push(b'J');
        self.fields.push(self.bytes.len());
        self.bytes.extend((value as i32).to_le_bytes());
    }

    /// GLOBAL.
    fn global(&mut self, module: &str, name: &str) {
        self.bytes.push(b'c');
        self.bytes.extend(format!("{module}\n{name}\n").bytes());
    }

    /// MARK, the integers, TUPLE.
    fn int_tuple(&mut self, values: &[usize]) {
        self.op(b"(");
        for &value in values {
            self.int(value);
        }
        self.op(b"t");
    }
}

/// The storage class of a type.
fn storage_class(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F16 => "HalfStorage",
        Dtype::BF16 => "BFloat16Storage",
        Dtype::F64 => "DoubleStorage",
        Dtype::I64 => "LongStorage",
        Dtype::I32 => "IntStorage",
        Dtype::U8 => "ByteStorage",
        Dtype::BOOL => "BoolStorage",
        _ => "FloatStorage",
    }
}

/// The pickle of `torch.save({"model_state_dict": state_dict})` (tensor `i` in storage `"i"`)
/// and the offsets of its integers and string lengths.
pub fn state_dict_pickle(tensors: &[StoredTensor]) -> (Vec<u8>, Vec<usize>) {
    let mut pickle = Pickle::default();
    pickle.op(b"\x80\x02}");
    pickle.string("model_state_dict");
    pickle.global("collections", "OrderedDict");
    pickle.op(b")R(");
    for (index, tensor) in tensors.iter().enumerate() {
        let numel: usize = tensor.shape.iter().product();
        let strides: Vec<usize> = (0..tensor.shape.len())
            .map(|axis| tensor.shape[axis + 1..].iter().product())
            .collect();
        pickle.string(&tensor.name);
        pickle.global("torch._utils", "_rebuild_tensor_v2");
        pickle.op(b"((");
        pickle.string("storage");
        pickle.global("torch", storage_class(tensor.dtype));
        pickle.string(&index.to_string());
        pickle.string("cpu");
        pickle.int(numel);
        pickle.op(b"tQ");
        pickle.int(0);
        pickle.int_tuple(&tensor.shape);
        pickle.int_tuple(&strides);
        pickle.op(b"\x89");
        pickle.global("collections", "OrderedDict");
        pickle.op(b")RtR");
    }
    pickle.op(b"us.");
    (pickle.bytes, pickle.fields)
}

/// The storages of [`state_dict_pickle`]: (key, bytes).
pub fn storages(tensors: &[StoredTensor]) -> Vec<(String, Vec<u8>)> {
    tensors
        .iter()
        .enumerate()
        .map(|(index, tensor)| (index.to_string(), tensor.data.clone()))
        .collect()
}

/// A `.pth` file as `torch.save` writes it: a zip (entries stored) of `archive/data.pkl`, the
/// storages under `archive/data/`, `archive/byteorder` and `archive/version`.
pub fn pth_bytes(pickle: &[u8], storages: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut entry = |name: &str, bytes: &[u8]| {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    };
    entry("archive/data.pkl", pickle);
    entry("archive/byteorder", b"little");
    for (key, bytes) in storages {
        entry(&format!("archive/data/{key}"), bytes);
    }
    entry("archive/version", b"3\n");
    zip.finish().unwrap().into_inner()
}

/// Names in PyTorch pickles: storage classes, rebuild functions, keys.
const PICKLE_TOKENS: [&[u8]; 24] = [
    b"FloatStorage",
    b"HalfStorage",
    b"BFloat16Storage",
    b"DoubleStorage",
    b"LongStorage",
    b"IntStorage",
    b"ByteStorage",
    b"BoolStorage",
    b"ComplexFloatStorage",
    b"UntypedStorage",
    b"_rebuild_tensor_v2",
    b"_rebuild_tensor",
    b"_rebuild_parameter",
    b"_rebuild_from_type_v2",
    b"OrderedDict",
    b"model_state_dict",
    b"storage",
    b"cpu",
    b"\x89",
    b"\x88",
    b"N",
    b"tQ",
    b")R",
    b"us.",
];

/// A pickle seed (the storages stay valid; the target zips the mutated pickle with them).
pub fn pickle_seed(name: &'static str, tensors: &[StoredTensor]) -> Seed {
    let (bytes, fields) = state_dict_pickle(tensors);
    Seed::new(name, bytes)
        .fields(fields)
        .tokens(PICKLE_TOKENS)
        .tokens(tensors.iter().map(|tensor| tensor.name.as_bytes()))
}

/// A `.pth` zip seed: its zip headers and entry names are what mutations aim at.
pub fn pth_zip_seed(name: &'static str, tensors: &[StoredTensor]) -> Seed {
    let (pickle, _) = state_dict_pickle(tensors);
    let bytes = pth_bytes(&pickle, &storages(tensors));
    let fields = zip_fields(&bytes);
    Seed::new(name, bytes)
        .fields(fields)
        .tokens(ZIP_TOKENS)
        .tokens([
            &b"archive/data.pkl"[..],
            b"archive/data/0",
            b"archive/byteorder",
            b"little",
            b"big",
        ])
        .tokens(PICKLE_TOKENS)
}
