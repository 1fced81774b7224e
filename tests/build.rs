fn main() {
    // The test binaries of this package are gwplugin hosts.
    gwplugin_build::host();
}
