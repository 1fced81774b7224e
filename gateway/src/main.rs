fn main() {
    let manifest = gwplugin_host::host_manifest!();
    println!("{}", gwplugin_build::decode_record(manifest).expect("embedded manifest").to_json_pretty());
}
