/// The EdgePlan release.
public enum EdgePlanVersion {
    public static let string = "0.1.0"
}
