fn main() {
    // Computes this plugin's ABI manifest; `gwplugin::export!` embeds it.
    gwplugin_build::plugin();
}
