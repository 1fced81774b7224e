fn main() {
    // gwhost is a gwplugin host: embed its ABI manifest.
    gwplugin_build::host();
}
