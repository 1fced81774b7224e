fn main() {
    // The templates are embedded with include_dir!: rebuild when they change.
    println!("cargo::rerun-if-changed=../templates");
}
