fn main() {
    println!("notch {}", notch_core::VERSION);
}
