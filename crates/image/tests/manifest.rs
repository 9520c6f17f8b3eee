//! Parsing manifests and choosing a platform out of an index.

use berth_image::manifest::{
    Compression, Manifest, Platform, layer_compression, media, select_platform,
};

fn d(n: u8) -> String {
    format!("sha256:{}", hex::encode([n; 32]))
}

#[test]
fn platform_parse_and_normalise() {
    assert_eq!(
        Platform::parse("linux/arm").unwrap().to_string(),
        "linux/arm/v7"
    );
    assert_eq!(
        Platform::parse("linux/arm64").unwrap().to_string(),
        "linux/arm64/v8"
    );
    assert_eq!(
        Platform::parse("linux/aarch64/8").unwrap().to_string(),
        "linux/arm64/v8"
    );
    assert_eq!(
        Platform::parse("linux/x86_64").unwrap().to_string(),
        "linux/amd64"
    );
    assert_eq!(Platform::parse("amd64").unwrap().to_string(), "linux/amd64");
    assert_eq!(
        Platform::parse("linux/arm/6").unwrap().to_string(),
        "linux/arm/v6"
    );
    assert!(Platform::parse("linux/").is_err());
    assert!(Platform::parse("a/b/c/d").is_err());
    assert!(Platform::parse("linux/am d64").is_err());
    assert_eq!(Platform::host().os, "linux");
}

#[test]
fn selects_platform() {
    let json = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[
              {{"mediaType":"{m}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{m}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}},
              {{"mediaType":"{m}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
              {{"mediaType":"{m}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}}]}}"#,
        media::OCI_INDEX,
        d(1),
        d(2),
        d(3),
        d(4),
        m = media::OCI_MANIFEST
    );
    let Manifest::Index(idx) = Manifest::parse(None, json.as_bytes()).unwrap() else {
        panic!("not an index")
    };
    let pick = |s: &str| {
        select_platform(&idx, &Platform::parse(s).unwrap())
            .unwrap()
            .digest
            .to_string()
    };
    assert_eq!(pick("linux/amd64"), d(1));
    assert_eq!(
        pick("linux/arm64/v8"),
        d(2),
        "arm64 without variant means v8"
    );
    assert_eq!(pick("linux/arm"), d(4), "arm means arm/v7");
    assert_eq!(pick("linux/arm/v6"), d(3));
    let e = select_platform(&idx, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("no matching manifest for linux/s390x"),
        "{e}"
    );
    assert!(e.to_string().contains("linux/arm/v7"), "{e}");
}

#[test]
fn refuses_schema1_and_unknown_layers() {
    let e = Manifest::parse(None, br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#).unwrap_err();
    assert!(e.to_string().contains("schema 1"), "{e}");
    let bad = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},
               "layers":[{{"mediaType":"application/x-rar","digest":"{}","size":3}}]}}"#,
        media::OCI_MANIFEST,
        media::OCI_CONFIG,
        d(1),
        d(2)
    );
    let e = format!("{:#}", Manifest::parse(None, bad.as_bytes()).unwrap_err());
    assert!(
        e.contains("unsupported layer media type \"application/x-rar\""),
        "{e}"
    );
    assert!(Manifest::parse(None, b"not json").is_err());
    let e = Manifest::parse(Some("text/html"), br#"{"schemaVersion":2}"#).unwrap_err();
    assert!(
        e.to_string().contains("unsupported manifest media type"),
        "{e}"
    );
}

#[test]
fn parses_docker_schema2() {
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},
               "layers":[{{"mediaType":"{}","digest":"{}","size":3}}]}}"#,
        media::DOCKER_MANIFEST,
        media::DOCKER_CONFIG,
        d(1),
        media::DOCKER_LAYER_GZIP,
        d(2)
    );
    let Manifest::Image(m) = Manifest::parse(None, m.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(m.layers[0].size, 3);
    assert_eq!(
        layer_compression(&m.layers[0].media_type).unwrap(),
        Compression::Gzip
    );
    assert_eq!(
        layer_compression(media::OCI_LAYER).unwrap(),
        Compression::None
    );
    assert_eq!(
        layer_compression(media::OCI_LAYER_ZSTD).unwrap(),
        Compression::Zstd
    );
    assert_eq!(
        layer_compression(media::DOCKER_LAYER).unwrap(),
        Compression::None
    );
}
