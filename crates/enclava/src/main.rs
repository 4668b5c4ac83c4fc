fn main() {
    println!("enclava");
}
