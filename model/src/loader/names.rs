//! The renaming rules between reference (PyTorch) state-dict names and Burn module paths.

use burn_store::KeyRemapper;

/// Renaming rules from reference (PyTorch) state-dict names to Burn module paths, applied in
/// order, each to the result of the previous ones.
pub const REFERENCE_TO_BURN: &[(&str, &str)] = &[
    // Swin Transformer (official layout).
    (
        r"^visual_backbone\.layers\.",
        "encoder.visual_backbone.stages.",
    ),
    (r"^visual_backbone\.", "encoder.visual_backbone."),
    (r"\.attn\.", ".attention."),
    (r"\.attn_mask$", ".attention_mask"),
    (r"^video_dense\.", "encoder.video_dense."),
    // Two-stream encoder.
    (
        r"^encoder\.bert\.encoder\.layer\.",
        "encoder.two_stream.text_encoder.layers.",
    ),
    (
        r"^encoder\.bert\.encoder\.r_layers\.",
        "encoder.two_stream.visual_encoder.layers.",
    ),
    (
        r"^encoder\.bert\.encoder\.x_layers\.",
        "encoder.two_stream.cross_layers.",
    ),
    (r"^encoder\.bert\.", "encoder.two_stream."),
    (r"\.attention\.self\.", ".self_attention.attention."),
    (r"\.attention\.output\.", ".self_attention.output."),
    (r"\.intermediate\.dense\.", ".feed_forward.intermediate."),
    (r"(\.layers\.\d+)\.output\.", "$1.feed_forward.output."),
    (r"\.visual_attention\.att\.", ".cross_attention.attention."),
    (r"\.visual_attention\.output\.", ".cross_attention.output."),
    (
        r"\.lang_self_att\.self\.",
        ".text_self_attention.attention.",
    ),
    (r"\.lang_self_att\.output\.", ".text_self_attention.output."),
    (
        r"\.visn_self_att\.self\.",
        ".visual_self_attention.attention.",
    ),
    (
        r"\.visn_self_att\.output\.",
        ".visual_self_attention.output.",
    ),
    (r"\.lang_inter\.dense\.", ".text_feed_forward.intermediate."),
    (r"\.lang_output\.", ".text_feed_forward.output."),
    (
        r"\.visn_inter\.dense\.",
        ".visual_feed_forward.intermediate.",
    ),
    (r"\.visn_output\.", ".visual_feed_forward.output."),
    // Pre-training heads.
    (r"^encoder\.cls\.predictions\.transform\.", "mlm_head."),
    (r"^encoder\.cls\.predictions\.bias$", "mlm_head.bias"),
    (r"^encoder\.cls\.seq_relationship\.", "nsp_head."),
    (r"^newfc_itm_cls\.", "itm_head."),
    (r"\.LayerNorm\.", ".layer_norm."),
];

/// Renaming rules from Burn module paths to reference state-dict names (the inverse of
/// [`REFERENCE_TO_BURN`]), applied in order.
pub const BURN_TO_REFERENCE: &[(&str, &str)] = &[
    (
        r"^encoder\.visual_backbone\.stages\.",
        "visual_backbone.layers.",
    ),
    (r"^encoder\.visual_backbone\.", "visual_backbone."),
    (r"^(visual_backbone\..*)\.attention\.", "$1.attn."),
    (r"^(visual_backbone\..*)\.attention_mask$", "$1.attn_mask"),
    (r"^encoder\.video_dense\.", "video_dense."),
    (
        r"^encoder\.two_stream\.text_encoder\.layers\.",
        "encoder.bert.encoder.layer.",
    ),
    (
        r"^encoder\.two_stream\.visual_encoder\.layers\.",
        "encoder.bert.encoder.r_layers.",
    ),
    (
        r"^encoder\.two_stream\.cross_layers\.",
        "encoder.bert.encoder.x_layers.",
    ),
    (r"^encoder\.two_stream\.", "encoder.bert."),
    (r"\.self_attention\.attention\.", ".attention.self."),
    (r"\.self_attention\.output\.", ".attention.output."),
    (r"\.feed_forward\.intermediate\.", ".intermediate.dense."),
    (r"\.feed_forward\.output\.", ".output."),
    (r"\.cross_attention\.attention\.", ".visual_attention.att."),
    (r"\.cross_attention\.output\.", ".visual_attention.output."),
    (
        r"\.text_self_attention\.attention\.",
        ".lang_self_att.self.",
    ),
    (r"\.text_self_attention\.output\.", ".lang_self_att.output."),
    (
        r"\.visual_self_attention\.attention\.",
        ".visn_self_att.self.",
    ),
    (
        r"\.visual_self_attention\.output\.",
        ".visn_self_att.output.",
    ),
    (r"\.text_feed_forward\.intermediate\.", ".lang_inter.dense."),
    (r"\.text_feed_forward\.output\.", ".lang_output."),
    (
        r"\.visual_feed_forward\.intermediate\.",
        ".visn_inter.dense.",
    ),
    (r"\.visual_feed_forward\.output\.", ".visn_output."),
    (r"^mlm_head\.bias$", "encoder.cls.predictions.bias"),
    (r"^mlm_head\.", "encoder.cls.predictions.transform."),
    (r"^nsp_head\.", "encoder.cls.seq_relationship."),
    (r"^itm_head\.", "newfc_itm_cls."),
    (r"\.layer_norm\.", ".LayerNorm."),
];

/// Renaming rules from HuggingFace BERT names (`bert.*`, unprefixed, `cls.*`) to reference names.
pub(super) const HF_BERT_TO_REFERENCE: &[(&str, &str)] = &[
    (r"^(embeddings|encoder|pooler)\.", "bert.$1."),
    (r"^bert\.", "encoder.bert."),
    (r"^cls\.", "encoder.cls."),
];

/// Compiles rule tables, applied one after the other, into a [`KeyRemapper`].
pub(super) fn remapper(rules: &[&[(&str, &str)]]) -> KeyRemapper {
    KeyRemapper::from_pattern_iter(rules.iter().flat_map(|rules| rules.iter().copied()))
        .expect("the renaming rules are valid regular expressions")
}

/// Whether a reference tensor (under its Burn-side name) is known to have no parameter here.
pub(super) fn is_ignored(name: &str) -> bool {
    [
        "relative_position_index",
        ".attention_mask",
        ".position_ids",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix))
        || [
            "encoder.cls.predictions.decoder.",
            "encoder.visual_backbone.head.",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Whether a parameter (Burn path) may be absent from a reference checkpoint, keeping its initial
/// values: the pre-training model's next-sentence head, which no forward pass uses (pre-training
/// state dicts written without it, e.g. by earlier vidcls versions, still load).
pub(super) fn is_optional(path: &str) -> bool {
    path.starts_with("nsp_head.")
}
